"""QAT layers and ``QuantSubnet``: a Subnet whose every quantization point is the engine's.

The layers here are the shared ones; each block type (:mod:`tinyformer.model.blocks`) builds
its stage's QAT layer from them, returned by the plain stage's ``quantized()``.

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

from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import tinyformer.quant.intops as intops
from tinyformer.engine.intmath import (
    INT8_MAX,
    INT8_MIN,
    quantize_multipliers,
    quantize_weights,
)
from tinyformer.engine.ops.conv import output_size
from tinyformer.engine.ops.elementwise import activation_range, add_params
from tinyformer.engine.ops.norm import layernorm_params
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

if TYPE_CHECKING:  # the model package's block types build on these layers
    from tinyformer.model.config import SubnetConfig
    from tinyformer.model.modules import ConvBNAct
    from tinyformer.model.subnet import Subnet


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


# ----------------------------------------------------------------------------- conv units


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
        stages = [stage.quantized() for stage in subnet.stages]  # each block type's Q-layer
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
