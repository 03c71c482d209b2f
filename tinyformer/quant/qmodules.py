"""QAT layers and ``QuantSubnet``: a Subnet whose every quantization point is the engine's.

``QuantSubnet.from_subnet`` folds each BatchNorm into its conv and mirrors the ``Subnet``
module tree with the same names (``stem.conv``, ``stages.0.blocks.1.expand.conv``,
``stages.1.blocks.0.attn.q``, ``classifier``, ...), so pruning masks and sparsity plans carry
over. Every module runs one of two paths:

- **float (training) path**, ``integer=False``: fake quantization with straight-through
  gradients at exactly the points where the integer graph rounds;
- **integer path**, ``integer=True``: int8 codes in, int8 codes out, bit-identical to the
  engine's reference ops (:mod:`tinyformer.quant.intops`), using the integer parameters the
  exporter writes (the ``int_params`` methods are shared by both).

Quantization points (each an :class:`ActQuant` with its own scale / zero point, or fixed):

=====================  ====================================================================
input                  fixed 1/255, zp -128 (q = pixel - 128)
conv / linear output   observed; ReLU6 fused as the [act_min, act_max] clamp; weights
                       int8 per output channel, bias int32 at s_in * s_w
residual add output    observed (MBConv residual, both transformer residuals)
LayerNorm output       observed; float LayerNorm on the quantized input in training
Q·Kᵀ scores            observed; 1/sqrt(d) is part of the real multiplier
softmax output         fixed 1/256, zp -128; float softmax + fake quant in training
A·V output             observed
GELU output            observed; forward = the engine's i-GELU table on the int8 input
                       code (exact), backward = exact GELU's derivative
global average pool    the input's scale / zp (no requantization)
=====================  ====================================================================

``QuantSubnet.forward`` takes float NCHW images in [0, 1]; in training mode, or in eval mode
with ``integer_eval=False``, it runs the float path, otherwise the integer path, returning
dequantized logits either way.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import tinyformer.quant.intops as intops
from tinyformer.engine.intmath import (
    INT8_MAX,
    INT8_MIN,
    quantize_multiplier,
    quantize_multipliers,
    quantize_weights,
)
from tinyformer.engine.ops.conv import output_size
from tinyformer.engine.ops.elementwise import activation_range, add_params
from tinyformer.engine.ops.norm import layernorm_params
from tinyformer.engine.ops.softmax import OUTPUT_SCALE, OUTPUT_ZP
from tinyformer.model.config import SubnetConfig
from tinyformer.model.subnet import (
    ConvBNAct,
    MBConvBlock,
    MBConvStage,
    Subnet,
    TransformerBlock,
    TransformerStage,
    map_to_tokens,
    tokens_to_map,
)
from tinyformer.prune.masks import get_mask, set_mask
from tinyformer.prune.plan import SparsityPlan
from tinyformer.quant.fakequant import (
    INPUT_QPARAMS,
    ActQuant,
    QParams,
    fake_quant,
    fake_quant_bias,
    fake_quant_weight,
    quantize_bias,
    to_int,
)
from tinyformer.quant.fold import fold_conv_bn
from tinyformer.quant.writer import GraphWriter

SOFTMAX_QPARAMS: QParams = (OUTPUT_SCALE, OUTPUT_ZP)


def _act_name(module: nn.Module) -> str:
    if isinstance(module, nn.ReLU6):
        return "relu6"
    if isinstance(module, nn.Identity):
        return "none"
    raise ValueError(f"unsupported activation {module!r} (expected ReLU6 or Identity)")


class QModule(nn.Module):
    """Base: ``qname`` is the module path (the graph node name), set by ``QuantSubnet``."""

    qname: str = ""


# ----------------------------------------------------------------------------- weighted


class _Weighted(QModule):
    """Shared by conv and linear: masked weight, int8 per-channel params, requantization."""

    act = "none"
    block: int | None = None  # pruning block size (exported as the node's "block" attr)

    def effective_weight(self) -> torch.Tensor:
        mask = get_mask(self)
        return self.weight if mask is None else self.weight * mask

    def _fq_weight_bias(self, qin: QParams) -> tuple[torch.Tensor, torch.Tensor]:
        w, ws = fake_quant_weight(self.effective_weight())
        return w, fake_quant_bias(self.bias, qin[0] * ws)

    def int_params(self, qin: QParams) -> dict:
        """int8 weights (torch layout), int32 bias and the node attrs, for input ``qin``."""
        w = self.effective_weight().detach().cpu().double().numpy()
        wq, ws = quantize_weights(w)
        acc_scales = float(qin[0]) * ws
        s_out, zp_out = self.out.qparams()
        mult, shift = quantize_multipliers(acc_scales / s_out)
        bias = quantize_bias(self.bias.detach().cpu().double().numpy(), acc_scales, self.qname)
        lo, hi = activation_range(self.act, s_out, zp_out)
        attrs = {
            "input_zp": int(qin[1]),
            "output_zp": int(zp_out),
            "multiplier": [int(v) for v in mult],
            "shift": [int(v) for v in shift],
            "act_min": int(lo),
            "act_max": int(hi),
        }
        return {"w": wq, "b": bias, "attrs": attrs, "qout": (s_out, zp_out)}

    def _block_attr(self) -> dict:
        return {"block": int(self.block)} if self.block and get_mask(self) is not None else {}


class QConv2d(_Weighted):
    """Conv (BN folded) + ReLU6/none; dense (``groups == 1``) or depthwise."""

    def __init__(
        self,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        stride: int,
        padding: int,
        groups: int = 1,
        act: str = "none",
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight.detach().clone())
        b = torch.zeros(weight.shape[0]) if bias is None else bias.detach().clone()
        self.bias = nn.Parameter(b.to(weight.dtype))
        self.stride, self.padding, self.groups, self.act = int(stride), int(padding), groups, act
        if groups != 1 and (groups != weight.shape[0] or weight.shape[1] != 1):
            raise ValueError("only dense (groups=1) and depthwise convs are supported")
        self.prunable = groups == 1
        self.out = ActQuant()

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, act: str = "none") -> QConv2d:
        return cls(conv.weight, conv.bias, _one(conv.stride), _one(conv.padding), conv.groups, act)

    @property
    def depthwise(self) -> bool:
        return self.groups > 1

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        if integer:
            p = self.int_params(qin)
            y = intops.conv2d(x, p["w"], p["b"], p["attrs"], self.stride, self.padding, self.groups)
            return y, p["qout"]
        w, b = self._fq_weight_bias(qin)
        y = F.conv2d(x, w, b, self.stride, self.padding, 1, self.groups)
        return self.out(F.relu6(y) if self.act == "relu6" else y, self.act)

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        p = self.int_params(qin)
        h, w, _ = g.shape(x)
        k_h, k_w = self.weight.shape[2:]
        pad = self.padding
        ho = output_size(h, k_h, self.stride, pad, pad)
        wo = output_size(w, k_w, self.stride, pad, pad)
        if self.depthwise:
            op, weights = "depthwise_conv2d", p["w"][:, 0].transpose(1, 2, 0)  # [kh][kw][C]
        else:
            op, weights = "conv2d", p["w"].transpose(0, 2, 3, 1)  # OHWI
        attrs = {**p["attrs"], "stride": self.stride, "padding": [pad] * 4, **self._block_attr()}
        inputs = [x, g.const(f"{self.qname}_w", weights), g.const(f"{self.qname}_b", p["b"])]
        out = g.node(op, self.qname, inputs, attrs, (ho, wo, self.weight.shape[0]), p["qout"])
        return out, p["qout"]


class QLinear(_Weighted):
    prunable = True

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().clone())
        bias = linear.bias if linear.bias is not None else torch.zeros(linear.out_features)
        self.bias = nn.Parameter(bias.detach().clone())
        self.out = ActQuant()

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        if integer:
            p = self.int_params(qin)
            return intops.linear(x, p["w"], p["b"], p["attrs"]), p["qout"]
        w, b = self._fq_weight_bias(qin)
        return self.out(F.linear(x, w, b))

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        p = self.int_params(qin)
        attrs = {**p["attrs"], **self._block_attr()}
        inputs = [x, g.const(f"{self.qname}_w", p["w"]), g.const(f"{self.qname}_b", p["b"])]
        shape = (*g.shape(x)[:-1], self.weight.shape[0])
        return g.node("linear", self.qname, inputs, attrs, shape, p["qout"]), p["qout"]


def _one(v) -> int:
    if isinstance(v, tuple | list):
        if len(set(v)) != 1:
            raise ValueError(f"only square strides / paddings are supported, got {v}")
        return int(v[0])
    return int(v)


# ----------------------------------------------------------------------------- pointwise


class QLayerNorm(QModule):
    """Scaled-LayerNorm: float LayerNorm on the quantized input, then the output point."""

    def __init__(self, norm: nn.LayerNorm) -> None:
        super().__init__()
        self.weight = nn.Parameter(norm.weight.detach().clone())
        self.bias = nn.Parameter(norm.bias.detach().clone())
        self.eps = float(norm.eps)
        self.out = ActQuant()

    def int_params(self, qin: QParams) -> dict:
        qout = self.out.qparams()
        gamma, beta, eps = layernorm_params(
            self.weight.detach().cpu().double().numpy(),
            self.bias.detach().cpu().double().numpy(),
            qin[0],
            qout[0],
            self.eps,
        )
        return {"gamma": gamma, "beta": beta, "eps": eps, "qout": qout}

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        if integer:
            p = self.int_params(qin)
            return intops.layernorm(x, p["gamma"], p["beta"], p["eps"], p["qout"][1]), p["qout"]
        y = F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)
        return self.out(y)

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        p = self.int_params(qin)
        inputs = [
            x,
            g.const(f"{self.qname}_gamma", p["gamma"]),
            g.const(f"{self.qname}_beta", p["beta"]),
        ]
        attrs = {"eps": int(p["eps"]), "output_zp": int(p["qout"][1])}
        return g.node("layernorm", self.qname, inputs, attrs, g.shape(x), p["qout"]), p["qout"]


class QAdd(QModule):
    """Residual add, requantized to its own observed output params."""

    def __init__(self) -> None:
        super().__init__()
        self.out = ActQuant()

    def int_params(self, q1: QParams, q2: QParams) -> dict:
        qout = self.out.qparams()
        attrs = add_params(q1[0], q1[1], q2[0], q2[1], qout[0], qout[1])
        return {"attrs": {**attrs, "act_min": INT8_MIN, "act_max": INT8_MAX}, "qout": qout}

    def forward(self, x1, q1: QParams, x2, q2: QParams, integer: bool = False):
        if integer:
            p = self.int_params(q1, q2)
            return intops.add(x1, x2, p["attrs"]), p["qout"]
        return self.out(x1 + x2)

    def export(self, g: GraphWriter, x1: str, q1: QParams, x2: str, q2: QParams):
        p = self.int_params(q1, q2)
        return g.node("add", self.qname, [x1, x2], p["attrs"], g.shape(x1), p["qout"]), p["qout"]


class QGelu(QModule):
    """GELU as the engine's 256-entry i-GELU table on the input's int8 code."""

    def __init__(self) -> None:
        super().__init__()
        self.out = ActQuant()

    def table(self, qin: QParams) -> tuple[np.ndarray, QParams]:
        qout = self.out.qparams()
        return intops.gelu_lut(float(qin[0]), int(qin[1]), float(qout[0]), int(qout[1])), qout

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        if integer:
            table, qout = self.table(qin)
            return intops.table_lookup(x, table), qout
        exact = F.gelu(x)  # erf GELU: the gradient, and what the output point observes
        if self.out.observing and self.training:
            self.out.observe(exact)
        table, qout = self.table(qin)
        codes = torch.from_numpy(table.astype(np.int64)).to(x.device)[to_int(x, qin) + 128]
        value = ((codes - qout[1]).to(x.dtype)) * qout[0]
        return exact + (value - exact).detach(), qout

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        table, qout = self.table(qin)
        inputs = [x, g.const(f"{self.qname}_table", np.array(table, np.int8))]
        return g.node("lut", self.qname, inputs, {}, g.shape(x), qout), qout


# ----------------------------------------------------------------------------- attention


def _split(x: torch.Tensor, heads: int) -> torch.Tensor:
    n, t, hd = x.shape
    return x.reshape(n, t, heads, hd // heads).transpose(1, 2)


class QAttention(QModule):
    def __init__(self, attn) -> None:
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
    def __init__(self, mlp) -> None:
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


# ----------------------------------------------------------------------------- conv stages


class QConvUnit(QModule):
    """A folded ConvBNAct: its conv lives at ``<name>.conv`` as in the float subnet."""

    def __init__(self, unit: ConvBNAct) -> None:
        super().__init__()
        act = _act_name(unit.act)
        self.conv = QConv2d.from_conv(fold_conv_bn(unit.conv, unit.bn), act)

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        return self.conv(x, qin, integer)

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        return self.conv.export(g, x, qin)


class QMBConvBlock(QModule):
    def __init__(self, block: MBConvBlock) -> None:
        super().__init__()
        self.expand = QConvUnit(block.expand)
        self.depthwise = QConvUnit(block.depthwise)
        self.project = QConvUnit(block.project)
        self.use_residual = bool(block.use_residual)
        self.add = QAdd() if self.use_residual else None

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        y, q = self.expand(x, qin, integer)
        y, q = self.depthwise(y, q, integer)
        y, q = self.project(y, q, integer)
        if self.add is None:
            return y, q
        return self.add(x, qin, y, q, integer)

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        y, q = self.expand.export(g, x, qin)
        y, q = self.depthwise.export(g, y, q)
        y, q = self.project.export(g, y, q)
        if self.add is None:
            return y, q
        return self.add.export(g, x, qin, y, q)


class QMBConvStage(QModule):
    def __init__(self, stage: MBConvStage) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(QMBConvBlock(b) for b in stage.blocks)

    def forward(self, x: torch.Tensor, qin: QParams, integer: bool = False):
        for block in self.blocks:
            x, qin = block(x, qin, integer)
        return x, qin

    def export(self, g: GraphWriter, x: str, qin: QParams) -> tuple[str, QParams]:
        for block in self.blocks:
            x, qin = block.export(g, x, qin)
        return x, qin


# ----------------------------------------------------------------------------- the model


class QuantSubnet(QModule):
    """The QAT model of a ``Subnet`` (see the module docstring)."""

    def __init__(
        self,
        config: SubnetConfig,
        stem: QConvUnit,
        stages: list[QModule],
        classifier: QLinear,
        plan: SparsityPlan | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.input = ActQuant(fixed=INPUT_QPARAMS)
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.classifier = classifier
        self.integer_eval = True
        self.plan = plan or SparsityPlan()
        for name, module in self.named_modules():
            if isinstance(module, QModule):
                module.qname = name
        modules = dict(self.named_modules())
        for name, spec in self.plan.items():
            modules[name].block = spec.block

    @classmethod
    def from_subnet(cls, subnet: Subnet, plan: SparsityPlan | None = None) -> QuantSubnet:
        """Fold BatchNorm, copy weights, carry the pruning masks over (by layer name)."""
        stages: list[QModule] = []
        for stage in subnet.stages:
            if isinstance(stage, MBConvStage):
                stages.append(QMBConvStage(stage))
            elif isinstance(stage, TransformerStage):
                stages.append(QTransformerStage(stage))
            else:
                raise TypeError(f"unsupported stage {type(stage).__name__}")
        model = cls(subnet.config, QConvUnit(subnet.stem), stages, QLinear(subnet.classifier),
                    plan)  # fmt: skip
        modules = dict(model.named_modules())
        for name, m in subnet.named_modules():
            mask = get_mask(m)
            if mask is not None:
                set_mask(modules[name], mask)
        return model.to(next(subnet.parameters()).device)

    # -- modes ---------------------------------------------------------------------------

    def act_quants(self) -> list[ActQuant]:
        return [m for m in self.modules() if isinstance(m, ActQuant)]

    def set_observing(self, on: bool) -> None:
        for q in self.act_quants():
            q.observing = on and q.fixed is None

    def freeze(self) -> None:
        """Stop observing: the quantization params are final."""
        self.set_observing(False)

    @property
    def calibrated(self) -> bool:
        return all(q.fixed is not None or bool(q.initialized) for q in self.act_quants())

    @contextmanager
    def simulated(self):
        """Evaluate through the float fake-quant path instead of the integer one."""
        old = self.integer_eval
        self.integer_eval = False
        try:
            yield self
        finally:
            self.integer_eval = old

    # -- forward -------------------------------------------------------------------------

    def features(self, x: torch.Tensor, integer: bool) -> tuple[torch.Tensor, QParams]:
        if integer:
            q = INPUT_QPARAMS
            x = (torch.round(x.double() / q[0]) + q[1]).clamp(INT8_MIN, INT8_MAX).long()
        else:
            x, q = self.input(x)
        x, q = self.stem(x, q, integer)
        for stage in self.stages:
            x, q = stage(x, q, integer)
        if integer:
            return intops.global_avgpool(x), q
        return fake_quant(x.mean(dim=(2, 3)), *q), q

    def int_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, QParams]:
        """int8 logit codes (int64 [N, classes]) and their params, through the integer path."""
        with torch.no_grad():
            h, q = self.features(x, True)
            return self.classifier(h, q, True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training or not self.integer_eval:
            h, q = self.features(x, False)
            return self.classifier(h, q)[0]
        codes, (scale, zp) = self.int_logits(x)
        return ((codes - zp).double() * scale).float()

    # -- export --------------------------------------------------------------------------

    def export_graph(self, g: GraphWriter) -> str:
        cfg = self.config
        x = g.input("input", (cfg.image_size, cfg.image_size, cfg.in_channels), INPUT_QPARAMS)
        q = INPUT_QPARAMS
        x, q = self.stem.export(g, x, q)
        for stage in self.stages:
            x, q = stage.export(g, x, q)
        x = g.node("global_avgpool", "pool", [x], {"act_min": INT8_MIN, "act_max": INT8_MAX},
                   (g.shape(x)[-1],), q)  # fmt: skip
        out, _ = self.classifier.export(g, x, q)
        return out
