"""Fake quantization: int8 rounding in the float graph, with straight-through gradients.

Conventions (the engine's, ``tinyformer/engine/intmath.py``):

- activations: per-tensor affine int8, real = scale * (q - zp). A quantization point
  (:class:`ActQuant`) observes the float tensor's range (EMA of the batch min / max while
  observing, then frozen) and derives (scale, zp) exactly as the engine's graph builder does
  (:func:`qparams_from_range`): the range widened to hold 0, scale = (hi - lo) / 255,
  zp = clamp(round(-128 - lo / scale)). ``fake_quant`` rounds and clamps to the op's int8
  output range [act_min, act_max] (a fused ReLU / ReLU6 is that clamp) and passes gradients
  straight through inside the range (zero outside);
- weights: symmetric int8 per output channel (axis 0), scale = max|w| / 127, values in
  [-127, 127]; a channel whose weights are all zero (pruned away) gets the largest live
  channel's scale (``intmath.weight_scales``);
- biases: int32 at scale input_scale * weight_scale[c].

``intmath.quantize_weights`` (numpy, float64) gives the integer weights the exported graph and
the integer evaluation path use; :func:`fake_quant_weight` is its float32 twin for training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from tinyformer.engine.intmath import INT8_MAX, INT8_MIN, INT32_MAX
from tinyformer.engine.ops.elementwise import activation_range

QParams = tuple[float, int]  # (scale, zero point)
INPUT_QPARAMS: QParams = (1.0 / 255.0, -128)  # model input pixel / 255 <-> q = pixel - 128
MIN_RANGE = 1e-6


def qparams_from_range(lo: float, hi: float) -> QParams:
    """(scale, zp) mapping [min(lo, 0), max(hi, 0)] onto int8 (the builder's output_quant)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    scale = max(hi - lo, MIN_RANGE) / 255.0
    zp = int(np.clip(round(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return scale, zp


class _FakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, scale: float, zp: int, qmin: int, qmax: int):
        q = torch.round(x / scale) + zp
        ctx.save_for_backward((q >= qmin) & (q <= qmax))
        return (q.clamp(qmin, qmax) - zp) * scale

    @staticmethod
    def backward(ctx, grad):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None, None


def fake_quant(
    x: torch.Tensor, scale: float, zp: int, qmin: int = INT8_MIN, qmax: int = INT8_MAX
) -> torch.Tensor:
    """scale * (clamp(round(x / scale) + zp, qmin, qmax) - zp), straight-through gradient."""
    return _FakeQuant.apply(x, float(scale), int(zp), int(qmin), int(qmax))


def to_int(x: torch.Tensor, qp: QParams) -> torch.Tensor:
    """The int8 codes (as int64) of an already fake-quantized tensor."""
    scale, zp = qp
    return (torch.round(x.detach().double() / scale) + zp).clamp(INT8_MIN, INT8_MAX).long()


class _RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


def round_ste(x: torch.Tensor) -> torch.Tensor:
    return _RoundSTE.apply(x)


def weight_scales_torch(w: torch.Tensor) -> torch.Tensor:
    """Per-output-channel scales, no gradient: the engine's rule (``intmath.weight_scales``:
    max|w| / 127; an all-zero channel takes the largest live channel's scale)."""
    amax = w.detach().abs().reshape(w.shape[0], -1).amax(dim=1)
    top = amax.max()
    fill = top / 127.0 if top > 0 else torch.ones_like(top)
    return torch.where(amax > 0, amax / 127.0, fill)


def fake_quant_weight(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(fake-quantized weight, per-channel scales): symmetric int8 per output channel."""
    scales = weight_scales_torch(w)
    shape = (-1,) + (1,) * (w.ndim - 1)
    q = round_ste(w / scales.reshape(shape)).clamp(-127, 127)
    return q * scales.reshape(shape), scales


def fake_quant_bias(b: torch.Tensor, acc_scales: torch.Tensor) -> torch.Tensor:
    """The bias as the engine holds it: round(b / (s_in * s_w)) at that scale."""
    return round_ste(b / acc_scales) * acc_scales


def quantize_bias(b: np.ndarray, acc_scales: np.ndarray, where: str = "layer") -> np.ndarray:
    """round(b / acc_scales) as int32; raises if it does not fit."""
    q = np.round(np.asarray(b, np.float64) / acc_scales)
    if np.any(np.abs(q) > INT32_MAX):
        raise ValueError(f"{where}: bias does not fit int32 at scale input x weight scale")
    return q.astype(np.int32)


class ActQuant(nn.Module):
    """One activation quantization point: observed range -> (scale, zero point).

    While ``observing`` (and the module is in training mode) every forward updates the range
    with an EMA of the batch min / max (the first batch sets it). ``fixed`` pins the params
    (the model input, softmax output). ``forward(x, act)`` observes, then fake-quantizes
    with the current params and returns the result and the params.
    """

    def __init__(self, momentum: float = 0.1, fixed: QParams | None = None) -> None:
        super().__init__()
        self.momentum = momentum
        self.fixed = fixed
        self.observing = fixed is None
        self.register_buffer("lo", torch.zeros((), dtype=torch.float64))
        self.register_buffer("hi", torch.zeros((), dtype=torch.float64))
        self.register_buffer("initialized", torch.zeros((), dtype=torch.bool))

    def extra_repr(self) -> str:
        if self.fixed is not None:
            return f"fixed={self.fixed}"
        if not bool(self.initialized):
            return "uncalibrated"
        scale, zp = self.qparams()
        return f"scale={scale:.6g}, zp={zp}, observing={self.observing}"

    @torch.no_grad()
    def observe(self, x: torch.Tensor) -> None:
        lo, hi = x.detach().min().double(), x.detach().max().double()
        if not bool(self.initialized):
            self.lo.copy_(lo)
            self.hi.copy_(hi)
            self.initialized.fill_(True)
        else:
            self.lo.lerp_(lo, self.momentum)
            self.hi.lerp_(hi, self.momentum)

    def qparams(self) -> QParams:
        if self.fixed is not None:
            return float(self.fixed[0]), int(self.fixed[1])
        if not bool(self.initialized):
            raise RuntimeError("activation range not observed yet: calibrate the model first")
        return qparams_from_range(float(self.lo), float(self.hi))

    def forward(self, x: torch.Tensor, act: str = "none") -> tuple[torch.Tensor, QParams]:
        """Observe ``x`` (already activated), then fake-quantize it onto the op's output
        range: ``activation_range(act, scale, zp)``, int8 for ``act="none"``."""
        if self.observing and self.training and self.fixed is None:
            self.observe(x)
        qp = self.qparams()
        lo, hi = activation_range(act, *qp)
        return fake_quant(x, qp[0], qp[1], lo, hi), qp


def multiplier_real(scale: float) -> float:
    """Guard for real multipliers (finite, > 0)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"bad requantization scale {scale}")
    return scale
