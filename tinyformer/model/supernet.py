"""Weight-sharing hybrid supernet (MobileViT-style conv stages + transformer stages).

Every elastic module holds the largest weights of its position; a ``SubnetConfig`` selects
the first ``depth`` blocks of each stage, the first channels / features / heads and the centred
kernel window. ``Supernet.extract`` copies exactly those slices into a plain ``Subnet``, so the
extracted subnet computes what the supernet computed for that config.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from tinyformer.model.config import (
    MBConvStageConfig,
    MBConvStageSpace,
    StageSpace,
    SubnetConfig,
    SupernetSpace,
    TransformerStageConfig,
    TransformerStageSpace,
    attention_width,
    mbconv_hidden,
    mlp_hidden,
)
from tinyformer.model.layers import (
    ElasticBatchNorm2d,
    ElasticConv2d,
    ElasticDepthwiseConv2d,
    ElasticLayerNorm,
    ElasticLinear,
    batchnorm_recalibration,
)
from tinyformer.model.subnet import (
    MLP,
    ConvBNAct,
    GlobalAvgPool,
    MBConvBlock,
    MBConvStage,
    MultiHeadSelfAttention,
    Subnet,
    TransformerBlock,
    TransformerStage,
    map_to_tokens,
    multi_head_attention,
    tokens_to_map,
)


def _act(relu6: bool) -> nn.Module:
    return nn.ReLU6() if relu6 else nn.Identity()


class ElasticConvBNAct(nn.Module):
    """Elastic dense conv (elastic out channels and kernel) + BN + ReLU6/Identity."""

    def __init__(
        self, max_in: int, max_out: int, max_kernel: int, stride: int = 1, relu6: bool = True
    ) -> None:
        super().__init__()
        self.relu6 = relu6
        self.conv = ElasticConv2d(max_in, max_out, max_kernel, stride)
        self.bn = ElasticBatchNorm2d(max_out)
        self.act = _act(relu6)

    def forward(self, x: torch.Tensor, out_ch: int, k: int | None = None) -> torch.Tensor:
        return self.act(self.bn(self.conv(x, out_ch, k)))

    def export(self, in_ch: int, out_ch: int, k: int | None = None) -> ConvBNAct:
        return ConvBNAct(
            self.conv.export(in_ch, out_ch, k), self.bn.export(out_ch), _act(self.relu6)
        )


class ElasticDepthwiseBNAct(nn.Module):
    """Elastic depthwise conv (channels from the input, elastic kernel) + BN + ReLU6."""

    def __init__(self, max_ch: int, max_kernel: int, stride: int) -> None:
        super().__init__()
        self.conv = ElasticDepthwiseConv2d(max_ch, max_kernel, stride)
        self.bn = ElasticBatchNorm2d(max_ch)
        self.act = nn.ReLU6()

    def forward(self, x: torch.Tensor, k: int) -> torch.Tensor:
        return self.act(self.bn(self.conv(x, k)))

    def export(self, ch: int, k: int) -> ConvBNAct:
        return ConvBNAct(self.conv.export(ch, k), self.bn.export(ch), nn.ReLU6())


class ElasticMBConvBlock(nn.Module):
    def __init__(self, max_in: int, max_out: int, max_kernel: int, max_expand: int, stride: int):
        super().__init__()
        hidden = mbconv_hidden(max_in, max_expand)
        self.stride = stride
        self.expand = ElasticConvBNAct(max_in, hidden, 1)
        self.depthwise = ElasticDepthwiseBNAct(hidden, max_kernel, stride)
        self.project = ElasticConvBNAct(hidden, max_out, 1, relu6=False)

    def use_residual(self, in_ch: int, out_ch: int) -> bool:
        return self.stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor, width: int, k: int, expand_ratio: int) -> torch.Tensor:
        in_ch = x.shape[1]
        y = self.expand(x, mbconv_hidden(in_ch, expand_ratio))
        y = self.project(self.depthwise(y, k), width)
        return x + y if self.use_residual(in_ch, width) else y

    def export(self, in_ch: int, width: int, k: int, expand_ratio: int) -> MBConvBlock:
        hidden = mbconv_hidden(in_ch, expand_ratio)
        return MBConvBlock(
            self.expand.export(in_ch, hidden),
            self.depthwise.export(hidden, k),
            self.project.export(hidden, width),
            self.use_residual(in_ch, width),
        )


class ElasticMBConvStage(nn.Module):
    def __init__(self, max_in: int, space: MBConvStageSpace) -> None:
        super().__init__()
        max_w, max_k, max_e = max(space.widths), max(space.kernel_sizes), max(space.expand_ratios)
        self.blocks = nn.ModuleList(
            ElasticMBConvBlock(max_in if i == 0 else max_w, max_w, max_k, max_e, stride)
            for i, stride in enumerate([space.stride] + [1] * (max(space.depths) - 1))
        )

    def forward(self, x: torch.Tensor, cfg: MBConvStageConfig) -> torch.Tensor:
        for block in self.blocks[: cfg.depth]:
            x = block(x, cfg.width, cfg.kernel_size, cfg.expand_ratio)
        return x

    def export(self, in_ch: int, cfg: MBConvStageConfig) -> MBConvStage:
        blocks = []
        for i, block in enumerate(self.blocks[: cfg.depth]):
            blocks.append(
                block.export(
                    in_ch if i == 0 else cfg.width, cfg.width, cfg.kernel_size, cfg.expand_ratio
                )
            )
        return MBConvStage(blocks)


class ElasticAttention(nn.Module):
    """Elastic heads (first ``heads`` of each Q/K/V projection) and elastic model width."""

    def __init__(self, max_dim: int, max_heads: int, head_dim: int) -> None:
        super().__init__()
        inner = attention_width(max_heads, head_dim)
        self.head_dim = head_dim
        self.q = ElasticLinear(max_dim, inner)
        self.k = ElasticLinear(max_dim, inner)
        self.v = ElasticLinear(max_dim, inner)
        self.proj = ElasticLinear(inner, max_dim)

    def forward(self, x: torch.Tensor, heads: int) -> torch.Tensor:
        inner = attention_width(heads, self.head_dim)
        out = multi_head_attention(
            self.q(x, inner), self.k(x, inner), self.v(x, inner), heads, self.head_dim
        )
        return self.proj(out, x.shape[-1])

    def export(self, dim: int, heads: int) -> MultiHeadSelfAttention:
        inner = attention_width(heads, self.head_dim)
        return MultiHeadSelfAttention(
            self.q.export(dim, inner),
            self.k.export(dim, inner),
            self.v.export(dim, inner),
            self.proj.export(inner, dim),
            heads,
            self.head_dim,
        )


class ElasticMLP(nn.Module):
    def __init__(self, max_dim: int, max_ratio: int) -> None:
        super().__init__()
        self.fc1 = ElasticLinear(max_dim, mlp_hidden(max_dim, max_ratio))
        self.act = nn.GELU()
        self.fc2 = ElasticLinear(mlp_hidden(max_dim, max_ratio), max_dim)

    def forward(self, x: torch.Tensor, mlp_ratio: int) -> torch.Tensor:
        dim = x.shape[-1]
        return self.fc2(self.act(self.fc1(x, mlp_hidden(dim, mlp_ratio))), dim)

    def export(self, dim: int, mlp_ratio: int) -> MLP:
        hidden = mlp_hidden(dim, mlp_ratio)
        return MLP(self.fc1.export(dim, hidden), self.fc2.export(hidden, dim))


class ElasticTransformerBlock(nn.Module):
    def __init__(self, max_dim: int, max_heads: int, head_dim: int, max_ratio: int) -> None:
        super().__init__()
        self.norm1 = ElasticLayerNorm(max_dim)
        self.attn = ElasticAttention(max_dim, max_heads, head_dim)
        self.norm2 = ElasticLayerNorm(max_dim)
        self.mlp = ElasticMLP(max_dim, max_ratio)

    def forward(self, x: torch.Tensor, heads: int, mlp_ratio: int) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), heads)
        return x + self.mlp(self.norm2(x), mlp_ratio)

    def export(self, dim: int, heads: int, mlp_ratio: int) -> TransformerBlock:
        return TransformerBlock(
            self.norm1.export(dim),
            self.attn.export(dim, heads),
            self.norm2.export(dim),
            self.mlp.export(dim, mlp_ratio),
        )


class ElasticTransformerStage(nn.Module):
    def __init__(self, max_in: int, space: TransformerStageSpace) -> None:
        super().__init__()
        max_dim, p = max(space.widths), space.patch_size
        self.embed = ElasticConv2d(max_in, max_dim, p, stride=p, padding=0, bias=True)
        self.blocks = nn.ModuleList(
            ElasticTransformerBlock(
                max_dim, max(space.heads), space.head_dim, max(space.mlp_ratios)
            )
            for _ in range(max(space.depths))
        )
        self.norm = ElasticLayerNorm(max_dim)

    def forward(self, x: torch.Tensor, cfg: TransformerStageConfig) -> torch.Tensor:
        x = self.embed(x, cfg.width)
        height, width = x.shape[-2:]
        t = map_to_tokens(x)
        for block in self.blocks[: cfg.depth]:
            t = block(t, cfg.heads, cfg.mlp_ratio)
        return tokens_to_map(self.norm(t), height, width)

    def export(self, in_ch: int, cfg: TransformerStageConfig) -> TransformerStage:
        blocks = [b.export(cfg.width, cfg.heads, cfg.mlp_ratio) for b in self.blocks[: cfg.depth]]
        return TransformerStage(
            self.embed.export(in_ch, cfg.width), blocks, self.norm.export(cfg.width)
        )


def _stage(max_in: int, space: StageSpace) -> nn.Module:
    if isinstance(space, MBConvStageSpace):
        return ElasticMBConvStage(max_in, space)
    return ElasticTransformerStage(max_in, space)


class Supernet(nn.Module):
    """All subnets of ``space`` in one module; ``forward(x, config)`` runs one of them.

    Without a config, ``forward`` runs the active subnet (``set_active``; the largest at first).
    Input: float NCHW in [0, 1] of the space's image size and channels; output: logits.
    """

    def __init__(self, space: SupernetSpace) -> None:
        super().__init__()
        self.space = space
        max_stem = max(space.stem_widths)
        self.stem = ElasticConvBNAct(
            space.in_channels, max_stem, space.stem_kernel, space.stem_stride
        )
        stages, max_in = [], max_stem
        for stage_space in space.stages:
            stages.append(_stage(max_in, stage_space))
            max_in = max(stage_space.widths)
        self.stages = nn.ModuleList(stages)
        self.pool = GlobalAvgPool()
        self.classifier = ElasticLinear(max_in, space.num_classes)
        self.active = space.largest()

    @classmethod
    def for_subnet(cls, config: SubnetConfig) -> Supernet:
        """A supernet whose only subnet is ``config`` (used to build fresh subnets)."""
        return cls(SupernetSpace.from_subnet(config))

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
        stem = self.stem.export(self.space.in_channels, config.stem_width)
        stages, in_ch = [], config.stem_width
        for stage, stage_cfg in zip(self.stages, config.stages, strict=True):
            stages.append(stage.export(in_ch, stage_cfg))
            in_ch = stage_cfg.width
        classifier = self.classifier.export(in_ch, self.space.num_classes)
        subnet = Subnet(config, stem, stages, classifier)
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
