"""The network around the stages, shared by ``Supernet`` and fresh ``Subnet``s: the elastic
stem, stages (each built by its block type) and classifier of a space, and the plain modules
they export for one config.

Building all elastic modules first and exporting afterwards fixes the order in which random
initialisation draws from the RNG, so a fresh subnet is the same whichever builds it.
"""

from __future__ import annotations

from torch import nn

from tinyformer.model.blocks.registry import block_type
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.model.layers import ElasticConvBNAct, ElasticLinear
from tinyformer.model.modules import ConvBNAct


def elastic_parts(space: SupernetSpace) -> tuple[ElasticConvBNAct, nn.ModuleList, ElasticLinear]:
    """(stem, stages, classifier) holding the largest weights of every position of ``space``."""
    max_stem = max(space.stem_widths)
    stem = ElasticConvBNAct(space.in_channels, max_stem, space.stem_kernel, space.stem_stride)
    stages, max_in = [], max_stem
    for stage_space in space.stages:
        stages.append(block_type(stage_space).elastic(max_in, stage_space))
        max_in = max(stage_space.widths)
    return stem, nn.ModuleList(stages), ElasticLinear(max_in, space.num_classes)


def export_parts(
    stem: ElasticConvBNAct,
    stages: nn.ModuleList,
    classifier: ElasticLinear,
    space: SupernetSpace,
    config: SubnetConfig,
) -> tuple[ConvBNAct, list[nn.Module], nn.Linear]:
    """Plain copies of the slices of the elastic parts that ``config`` selects."""
    plain_stem = stem.export(space.in_channels, config.stem_width)
    plain_stages, in_ch = [], config.stem_width
    for stage, stage_cfg in zip(stages, config.stages, strict=True):
        plain_stages.append(stage.export(in_ch, stage_cfg))
        in_ch = stage_cfg.width
    return plain_stem, plain_stages, classifier.export(in_ch, space.num_classes)
