"""The transformer block type: a ``patch_size`` x ``patch_size`` stride-``patch_size`` conv
embedding to ``width`` channels, the feature map read as H*W tokens, ``depth`` pre-norm blocks
(LayerNorm, multi-head self-attention, LayerNorm, GELU MLP, residual adds) and a final
LayerNorm; the tokens are read back as a feature map.

Attention width = heads * head_dim; MLP hidden = width * mlp_ratio. Tensors are NCHW in torch;
the exporter maps them to NHWC, where the token view is free.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, ClassVar

import torch
from torch import nn

import tinyformer.quant.intops as intops
from tinyformer.engine.intmath import quantize_multiplier
from tinyformer.engine.ops.softmax import OUTPUT_SCALE, OUTPUT_ZP
from tinyformer.model.blocks.base import BlockType
from tinyformer.model.fields import ConfigError, check_in, check_int, choices, int_fields
from tinyformer.model.layers import ElasticConv2d, ElasticLayerNorm, ElasticLinear
from tinyformer.quant.fakequant import ActQuant, QParams, fake_quant
from tinyformer.quant.qmodules import (
    QAdd,
    QConv2d,
    QGelu,
    QLayerNorm,
    QLinear,
    QModule,
)
from tinyformer.quant.writer import GraphWriter

SOFTMAX_QPARAMS: QParams = (OUTPUT_SCALE, OUTPUT_ZP)


def attention_width(heads: int, head_dim: int) -> int:
    return heads * head_dim


def mlp_hidden(width: int, mlp_ratio: int) -> int:
    return width * mlp_ratio


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


# ----------------------------------------------------------------------------- config, space


@dataclass(frozen=True)
class TransformerStageConfig:
    """One transformer stage of a concrete subnet."""

    depth: int
    width: int
    heads: int
    mlp_ratio: int
    head_dim: int = 16
    patch_size: int = 1
    kind: ClassVar[str] = "transformer"

    def validate(self, where: str = "stage") -> None:
        for name in ("depth", "width", "heads", "mlp_ratio", "head_dim"):
            check_int(f"{where}.{name}", getattr(self, name))
        if self.patch_size not in (1, 2):
            raise ConfigError(f"{where}.patch_size: must be 1 or 2, got {self.patch_size!r}")

    def out_size(self, size: int, where: str = "stage") -> int:
        if size % self.patch_size:
            raise ConfigError(
                f"{where}.patch_size: {self.patch_size} does not divide the {size}x{size} "
                "feature map"
            )
        return size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        return int_fields(self)


@dataclass(frozen=True)
class TransformerStageSpace:
    """Elastic choices of one transformer stage (depth, width, heads, MLP ratio)."""

    depths: tuple[int, ...]
    widths: tuple[int, ...]
    heads: tuple[int, ...]
    mlp_ratios: tuple[int, ...]
    head_dim: int = 16
    patch_size: int = 1
    kind: ClassVar[str] = "transformer"
    elastic: ClassVar[tuple[str, ...]] = ("depths", "widths", "heads", "mlp_ratios")

    def __post_init__(self) -> None:
        for name in self.elastic:
            object.__setattr__(self, name, choices(f"{self.kind}.{name}", getattr(self, name)))

    @classmethod
    def single(cls, stage: TransformerStageConfig) -> TransformerStageSpace:
        """The space whose only member is ``stage``."""
        return cls(
            (stage.depth,), (stage.width,), (stage.heads,), (stage.mlp_ratio,), stage.head_dim,
            stage.patch_size,
        )  # fmt: skip

    def fitted(self, size: int) -> TransformerStageSpace:
        """This space for a ``size`` x ``size`` input: patch size 1 where 2 does not divide it."""
        return replace(self, patch_size=1) if size % self.patch_size else self

    def pick(self, choose: Any) -> TransformerStageConfig:
        return TransformerStageConfig(
            depth=choose(self.depths),
            width=choose(self.widths),
            heads=choose(self.heads),
            mlp_ratio=choose(self.mlp_ratios),
            head_dim=self.head_dim,
            patch_size=self.patch_size,
        )

    def check(self, stage: Any, where: str) -> None:
        if not isinstance(stage, TransformerStageConfig):
            raise ConfigError(
                f"{where}.kind: the space has a transformer stage here, got {stage.kind}"
            )
        check_in(f"{where}.depth", stage.depth, self.depths)
        check_in(f"{where}.width", stage.width, self.widths)
        check_in(f"{where}.heads", stage.heads, self.heads)
        check_in(f"{where}.mlp_ratio", stage.mlp_ratio, self.mlp_ratios)
        if stage.head_dim != self.head_dim or stage.patch_size != self.patch_size:
            raise ConfigError(
                f"{where}: head_dim/patch_size are fixed to {self.head_dim}/{self.patch_size}"
            )


# ----------------------------------------------------------------------------- QAT layers


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, t, hd = x.shape
    return x.reshape(n, t, heads, hd // heads).transpose(1, 2)


class QAttention(QModule):
    def __init__(self, attn: MultiHeadSelfAttention) -> None:
        super().__init__()
        self.q, self.k, self.v = QLinear(attn.q), QLinear(attn.k), QLinear(attn.v)
        self.proj = QLinear(attn.proj)
        self.heads, self.head_dim = int(attn.heads), int(attn.head_dim)
        self.scores = ActQuant()
        self.context = ActQuant()

    def core_params(self, qq: QParams, qk: QParams, qv: QParams) -> dict:
        s_scores, zp_scores = self.scores.qparams()
        m_qk, e_qk = quantize_multiplier(qq[0] * qk[0] / math.sqrt(self.head_dim) / s_scores)
        s_ctx, zp_ctx = self.context.qparams()
        m_av, e_av = quantize_multiplier(OUTPUT_SCALE * qv[0] / s_ctx)
        qk_attrs = {
            "heads": self.heads, "q_zp": int(qq[1]), "k_zp": int(qk[1]),
            "multiplier": int(m_qk), "shift": int(e_qk), "output_zp": int(zp_scores),
        }  # fmt: skip
        av_attrs = {
            "heads": self.heads, "attn_zp": OUTPUT_ZP, "v_zp": int(qv[1]),
            "multiplier": int(m_av), "shift": int(e_av), "output_zp": int(zp_ctx),
        }  # fmt: skip
        return {
            "qk": qk_attrs,
            "av": av_attrs,
            "q_scores": (s_scores, zp_scores),
            "q_ctx": (s_ctx, zp_ctx),
        }

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        q, qq = self.q(x, qin, integer)
        k, qk = self.k(x, qin, integer)
        v, qv = self.v(x, qin, integer)
        if integer:
            p = self.core_params(qq, qk, qv)
            scores = intops.matmul_qk(q, k, self.heads, p["qk"])
            probs = intops.softmax(scores, p["q_scores"][0])
            ctx = intops.matmul_av(probs, v, self.heads, p["av"])
            return self.proj(ctx, p["q_ctx"], integer)
        scores = _split(q, self.heads) @ _split(k, self.heads).transpose(-2, -1)
        scores, _ = self.scores(scores * self.head_dim**-0.5)
        probs = fake_quant(scores.softmax(dim=-1), *SOFTMAX_QPARAMS)
        ctx = probs @ _split(v, self.heads)
        n, _, t, _ = ctx.shape
        ctx, q_ctx = self.context(ctx.transpose(1, 2).reshape(n, t, -1))
        return self.proj(ctx, q_ctx)

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        q, qq = self.q.export(g, x, qin)
        k, qk = self.k.export(g, x, qin)
        v, qv = self.v.export(g, x, qin)
        p = self.core_params(qq, qk, qv)
        t = g.shape(q)[0]
        shape = (self.heads, t, t)
        scores = g.node("matmul_qk", f"{self.qname}_qk", [q, k], p["qk"], shape, p["q_scores"])
        table = g.const(f"{self.qname}_exp", intops.exp_table(float(p["q_scores"][0])).copy())
        probs = g.node("softmax", f"{self.qname}_softmax", [scores, table], {}, shape,
                       SOFTMAX_QPARAMS)  # fmt: skip
        ctx = g.node("matmul_av", f"{self.qname}_av", [probs, v], p["av"], g.shape(q), p["q_ctx"])
        return self.proj.export(g, ctx, p["q_ctx"])


class QMLP(QModule):
    def __init__(self, mlp: MLP) -> None:
        super().__init__()
        self.fc1 = QLinear(mlp.fc1)
        self.act = QGelu()
        self.fc2 = QLinear(mlp.fc2)

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        h, q = self.fc1(x, qin, integer)
        h, q = self.act(h, q, integer)
        return self.fc2(h, q, integer)

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        h, q = self.fc1.export(g, x, qin)
        h, q = self.act.export(g, h, q)
        return self.fc2.export(g, h, q)


class QTransformerBlock(QModule):
    def __init__(self, block: TransformerBlock) -> None:
        super().__init__()
        self.norm1 = QLayerNorm(block.norm1)
        self.attn = QAttention(block.attn)
        self.add1 = QAdd()
        self.norm2 = QLayerNorm(block.norm2)
        self.mlp = QMLP(block.mlp)
        self.add2 = QAdd()

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        a, qa = self.norm1(x, qin, integer)
        a, qa = self.attn(a, qa, integer)
        x, qin = self.add1(x, qin, a, qa, integer)
        m, qm = self.norm2(x, qin, integer)
        m, qm = self.mlp(m, qm, integer)
        return self.add2(x, qin, m, qm, integer)

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        a, qa = self.norm1.export(g, x, qin)
        a, qa = self.attn.export(g, a, qa)
        x, qin = self.add1.export(g, x, qin, a, qa)
        m, qm = self.norm2.export(g, x, qin)
        m, qm = self.mlp.export(g, m, qm)
        return self.add2.export(g, x, qin, m, qm)


class QTransformerStage(QModule):
    def __init__(self, stage: TransformerStage) -> None:
        super().__init__()
        self.embed = QConv2d.from_conv(stage.embed)
        self.blocks = nn.ModuleList(QTransformerBlock(b) for b in stage.blocks)
        self.norm = QLayerNorm(stage.norm)

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        x, q = self.embed(x, qin, integer)
        height, width = x.shape[-2:]
        t = map_to_tokens(x)
        for block in self.blocks:
            t, q = block(t, q, integer)
        t, q = self.norm(t, q, integer)
        return tokens_to_map(t, height, width), q

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        x, q = self.embed.export(g, x, qin)
        h, w, c = g.shape(x)
        t = g.node("reshape", f"{self.qname}.tokens", [x], {}, (h * w, c), q)
        for block in self.blocks:
            t, q = block.export(g, t, q)
        t, q = self.norm.export(g, t, q)
        return g.node("reshape", f"{self.qname}.map", [t], {}, (h, w, c), q), q


# ----------------------------------------------------------------------------- subnet stage


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

    def quantized(self) -> QTransformerStage:
        return QTransformerStage(self)


# ----------------------------------------------------------------------------- supernet stage


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


TRANSFORMER = BlockType(TransformerStageConfig, TransformerStageSpace, ElasticTransformerStage)
