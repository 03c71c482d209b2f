"""Every block type, by kind: the one list that configs, spaces and the supernet read."""

from __future__ import annotations

from tinyformer.model.blocks.base import BlockType
from tinyformer.model.blocks.mbconv import MBCONV, MBConvStageConfig, MBConvStageSpace
from tinyformer.model.blocks.transformer import (
    TRANSFORMER,
    TransformerStageConfig,
    TransformerStageSpace,
)

BLOCK_TYPES: dict[str, BlockType] = {t.kind: t for t in (MBCONV, TRANSFORMER)}

StageConfig = MBConvStageConfig | TransformerStageConfig
StageSpace = MBConvStageSpace | TransformerStageSpace
STAGE_CONFIGS: tuple[type, ...] = tuple(t.config for t in BLOCK_TYPES.values())


def block_type(stage: StageConfig | StageSpace) -> BlockType:
    """The block type of a stage config or space."""
    return BLOCK_TYPES[stage.kind]
