"""Standalone subnets: plain ``nn`` modules with explicit names, for training, QAT and export.

The stage modules are their block types' (:mod:`tinyformer.model.blocks`).

Module tree of a ``Subnet`` (every weight lives in an ``nn.Conv2d``, ``nn.BatchNorm2d``,
``nn.Linear`` or ``nn.LayerNorm``; forward code adds only weight-free ops):

    stem: ConvBNAct(conv, bn, act=ReLU6)
    stages[i]: MBConvStage
        blocks[j]: MBConvBlock(expand: ConvBNAct 1x1 + ReLU6,
                               depthwise: ConvBNAct k x k groups=C + ReLU6 (stride on block 0),
                               project: ConvBNAct 1x1 + Identity, use_residual: bool)
    stages[i]: TransformerStage
        embed: Conv2d p x p, stride p, bias       (feature map -> tokens: NHWC is [H*W, C])
        blocks[j]: TransformerBlock(norm1: LayerNorm,
                                    attn: MultiHeadSelfAttention(q, k, v, proj: Linear),
                                    norm2: LayerNorm, mlp: MLP(fc1: Linear, act: GELU, fc2))
        norm: LayerNorm                            (tokens -> feature map)
    pool: GlobalAvgPool
    classifier: Linear
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import tinyformer.model.torch_file as torch_file
from tinyformer.model.assembly import elastic_parts, export_parts
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.model.modules import ConvBNAct, GlobalAvgPool

SUBNET_FILE_VERSION = 1


class Subnet(nn.Module):
    """A standalone network for one ``SubnetConfig``; input float NCHW in [0, 1]."""

    def __init__(
        self,
        config: SubnetConfig,
        stem: ConvBNAct,
        stages: list[nn.Module],
        classifier: nn.Linear,
    ) -> None:
        super().__init__()
        self.config = config
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.pool = GlobalAvgPool()
        self.classifier = classifier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.classifier(self.pool(x))

    @classmethod
    def from_config(cls, config: SubnetConfig) -> Subnet:
        """A freshly initialised subnet (the init of the supernet whose only subnet is
        ``config``), e.g. to load weights into."""
        space = SupernetSpace.from_subnet(config)
        return cls(config, *export_parts(*elastic_parts(space), space, config))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def save_subnet(subnet: Subnet, path: str | Path) -> None:
    """Config (as JSON text) and weights in one torch file, written atomically; load with
    ``load_subnet``."""
    torch_file.save(
        {
            "version": SUBNET_FILE_VERSION,
            "config": subnet.config.to_json(),
            "state_dict": subnet.state_dict(),
        },
        path,
    )


def load_subnet(path: str | Path, map_location: str | torch.device = "cpu") -> Subnet:
    data = torch_file.load(path, map_location)
    if not isinstance(data, dict) or data.get("version") != SUBNET_FILE_VERSION:
        raise ValueError(f"{path}: not a TinyFormer subnet file (version {SUBNET_FILE_VERSION})")
    subnet = Subnet.from_config(SubnetConfig.from_json(data["config"]))
    subnet.load_state_dict(data["state_dict"])
    return subnet.eval()
