"""Weight-sharing hybrid supernet (MobileViT-style conv stages + transformer stages).

The stages are their block types' elastic stages (:mod:`tinyformer.model.blocks`). Every
elastic module holds the largest weights of its position; a ``SubnetConfig`` selects
the first ``depth`` blocks of each stage, the first channels / features / heads and the centred
kernel window. ``Supernet.extract`` copies exactly those slices into a plain ``Subnet``, so the
extracted subnet computes what the supernet computed for that config.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from tinyformer.model.assembly import elastic_parts, export_parts
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.model.layers import batchnorm_recalibration
from tinyformer.model.modules import GlobalAvgPool
from tinyformer.model.subnet import Subnet


class Supernet(nn.Module):
    """All subnets of ``space`` in one module; ``forward(x, config)`` runs one of them.

    Without a config, ``forward`` runs the active subnet (``set_active``; the largest at first).
    Input: float NCHW in [0, 1] of the space's image size and channels; output: logits.
    """

    def __init__(self, space: SupernetSpace) -> None:
        super().__init__()
        self.space = space
        self.stem, self.stages, classifier = elastic_parts(space)
        self.pool = GlobalAvgPool()
        self.classifier = classifier
        self.active = space.largest()

    def set_active(self, config: SubnetConfig) -> None:
        self.space.validate(config)
        self.active = config

    def forward(self, x: torch.Tensor, config: SubnetConfig | None = None) -> torch.Tensor:
        cfg = self.active if config is None else config
        x = self.stem(x, cfg.stem_width)
        for stage, stage_cfg in zip(self.stages, cfg.stages, strict=True):
            x = stage(x, stage_cfg)
        return self.classifier(self.pool(x), self.space.num_classes)

    def extract(self, config: SubnetConfig) -> Subnet:
        """A standalone ``Subnet`` with copies of this supernet's weights and BN statistics."""
        self.space.validate(config)
        parts = export_parts(self.stem, self.stages, self.classifier, self.space, config)
        subnet = Subnet(config, *parts)
        return subnet.to(self.classifier.weight.device).train(self.training)

    @torch.no_grad()
    def calibrate_bn(self, config: SubnetConfig, inputs: Iterable[torch.Tensor]) -> None:
        """Recompute BatchNorm statistics for ``config`` as exact averages over ``inputs``.

        Shared statistics after sandwich training mix many subnets; evaluate or extract a
        subnet after calibrating it. Leaves the module in eval mode.
        """
        with batchnorm_recalibration(self):
            for x in inputs:
                self(x, config)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
