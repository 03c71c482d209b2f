"""Standalone subnets: plain ``nn`` modules with explicit names, for training, QAT and export.

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

Tensors are NCHW in torch; the exporter maps them to NHWC, where the token view is free.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

import tinyformer.model.torch_file as torch_file
from tinyformer.model.config import SubnetConfig

SUBNET_FILE_VERSION = 1


def multi_head_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, head_dim: int
) -> torch.Tensor:
    """softmax(Q_h K_h^T / sqrt(head_dim)) V_h per head, heads concatenated: [N, T, heads*hd]."""
    n, t, _ = q.shape

    def split(x: torch.Tensor) -> torch.Tensor:
        return x.reshape(n, t, heads, head_dim).transpose(1, 2)  # [N, heads, T, hd]

    scores = split(q) @ split(k).transpose(-2, -1) * head_dim**-0.5
    out = scores.softmax(dim=-1) @ split(v)
    return out.transpose(1, 2).reshape(n, t, heads * head_dim)


def map_to_tokens(x: torch.Tensor) -> torch.Tensor:
    """[N, C, H, W] -> [N, H*W, C] (row-major tokens, the NHWC memory order)."""
    return x.flatten(2).transpose(1, 2)


def tokens_to_map(t: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, H*W, C] -> [N, C, H, W]."""
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], height, width)


class ConvBNAct(nn.Module):
    """conv -> BatchNorm (folded into the conv at export) -> ReLU6 or Identity."""

    def __init__(self, conv: nn.Conv2d, bn: nn.BatchNorm2d, act: nn.Module) -> None:
        super().__init__()
        self.conv = conv
        self.bn = bn
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class MBConvBlock(nn.Module):
    """Inverted residual: 1x1 expand, k x k depthwise, 1x1 project, optional residual add."""

    def __init__(
        self, expand: ConvBNAct, depthwise: ConvBNAct, project: ConvBNAct, use_residual: bool
    ) -> None:
        super().__init__()
        self.expand = expand
        self.depthwise = depthwise
        self.project = project
        self.use_residual = use_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.use_residual else y


class MBConvStage(nn.Module):
    def __init__(self, blocks: list[MBConvBlock]) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class MultiHeadSelfAttention(nn.Module):
    """Q, K, V projections to heads * head_dim, scaled dot-product softmax, output projection."""

    def __init__(
        self, q: nn.Linear, k: nn.Linear, v: nn.Linear, proj: nn.Linear, heads: int, head_dim: int
    ) -> None:
        super().__init__()
        self.q, self.k, self.v, self.proj = q, k, v, proj
        self.heads = heads
        self.head_dim = head_dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = multi_head_attention(self.q(x), self.k(x), self.v(x), self.heads, self.head_dim)
        return self.proj(out)


class MLP(nn.Module):
    def __init__(self, fc1: nn.Linear, fc2: nn.Linear) -> None:
        super().__init__()
        self.fc1 = fc1
        self.act = nn.GELU()
        self.fc2 = fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TransformerBlock(nn.Module):
    """Pre-norm block: x + attn(norm1(x)), then x + mlp(norm2(x))."""

    def __init__(
        self, norm1: nn.LayerNorm, attn: MultiHeadSelfAttention, norm2: nn.LayerNorm, mlp: MLP
    ) -> None:
        super().__init__()
        self.norm1 = norm1
        self.attn = attn
        self.norm2 = norm2
        self.mlp = mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class TransformerStage(nn.Module):
    """Patch-embedding conv, tokens through the blocks, final LayerNorm, back to a map."""

    def __init__(self, embed: nn.Conv2d, blocks: list[TransformerBlock], norm: nn.LayerNorm):
        super().__init__()
        self.embed = embed
        self.blocks = nn.ModuleList(blocks)
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        height, width = x.shape[-2:]
        t = map_to_tokens(x)
        for block in self.blocks:
            t = block(t)
        return tokens_to_map(self.norm(t), height, width)


class GlobalAvgPool(nn.Module):
    """[N, C, H, W] -> [N, C] mean over the spatial positions (tokens)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


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
        """A freshly initialised subnet (same init as the supernet), e.g. to load weights into."""
        from tinyformer.model.supernet import Supernet  # supernet builds on this module

        return Supernet.for_subnet(config).extract(config)

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
