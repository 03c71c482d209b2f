"""Batched integer ops for the QAT model's evaluation path: the engine's semantics, exactly.

Tensors are int64 torch tensors holding int8 codes, in the torch layouts (maps NCHW,
tokens [N, T, C]); results are bit-identical to the engine's numpy reference ops
(``tinyformer/engine/ops``) applied to each sample:

- accumulations (conv, linear, attention matmuls) run in float64, which is exact: every
  operand is an integer below 2^8 in magnitude and every partial sum stays far below 2^53;
- requantization, saturation, residual add, LayerNorm, softmax, table lookup and average
  rounding call the engine's own functions (``intmath.requantize``, ``elementwise.add``,
  ``norm.layernorm``, ``softmax.softmax``, ``gelu.lut``, ``pool.round_div``) on the batch.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F

from tinyformer.engine.intmath import INT8_MAX, INT8_MIN, requantize, saturate
from tinyformer.engine.ops.elementwise import add as engine_add
from tinyformer.engine.ops.gelu import gelu_table, lut
from tinyformer.engine.ops.norm import layernorm as engine_layernorm
from tinyformer.engine.ops.pool import round_div
from tinyformer.engine.ops.softmax import softmax as engine_softmax
from tinyformer.engine.ops.softmax import softmax_exp_table


def _np(x: torch.Tensor) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.int64, copy=False)


def _t(x: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.int64)).to(like.device)


def _exact(acc: torch.Tensor) -> np.ndarray:
    """float64 integer-valued accumulator -> int64 numpy."""
    return np.rint(acc.detach().cpu().numpy()).astype(np.int64)


def requant_last(
    acc: np.ndarray, multiplier, shift, zp: int, act_min: int = INT8_MIN, act_max: int = INT8_MAX
) -> np.ndarray:
    """clamp(requantize(acc, m, s) + zp): per-channel m / s broadcast along the last axis."""
    return saturate(requantize(acc, multiplier, shift) + int(zp), act_min, act_max)


def conv2d(
    x: torch.Tensor,
    weight: np.ndarray,
    bias: np.ndarray,
    p: dict,
    stride: int,
    padding: int,
    groups: int,
) -> torch.Tensor:
    """NCHW int codes -> NCHW int codes; ``weight`` int8 in torch layout [O][I/g][kh][kw];
    ``p`` holds input_zp, output_zp, multiplier, shift, act_min, act_max (the node attrs)."""
    xs = (x - int(p["input_zp"])).double()  # zero padding of (x - zp) == padding x with zp
    acc = F.conv2d(xs, torch.from_numpy(weight.astype(np.float64)).to(x.device), None,
                   stride, padding, 1, groups)  # fmt: skip
    acc = _exact(acc).transpose(0, 2, 3, 1) + np.asarray(bias, np.int64)  # NHWC
    out = requant_last(acc, p["multiplier"], p["shift"], p["output_zp"], p["act_min"], p["act_max"])
    return _t(out.transpose(0, 3, 1, 2), x)


def linear(x: torch.Tensor, weight: np.ndarray, bias: np.ndarray, p: dict) -> torch.Tensor:
    """[..., K] int codes -> [..., M]; weight int8 [M][K]."""
    xs = (x - int(p["input_zp"])).double()
    acc = xs @ torch.from_numpy(weight.astype(np.float64)).to(x.device).T
    acc = _exact(acc) + np.asarray(bias, np.int64)
    out = requant_last(acc, p["multiplier"], p["shift"], p["output_zp"], p["act_min"], p["act_max"])
    return _t(out, x)


def add(x1: torch.Tensor, x2: torch.Tensor, p: dict) -> torch.Tensor:
    """Residual add (``p``: the add node's attrs)."""
    return _t(engine_add(_np(x1), _np(x2), **p).astype(np.int64), x1)


def layernorm(x: torch.Tensor, gamma: np.ndarray, beta: np.ndarray, eps: int, out_zp: int):
    """LayerNorm over the last axis of int codes [..., D]."""
    rows = _np(x).reshape(-1, x.shape[-1])
    out = engine_layernorm(rows, gamma, beta, eps, out_zp)
    return _t(out.reshape(tuple(x.shape)), x)


@functools.lru_cache(maxsize=256)
def exp_table(input_scale: float) -> np.ndarray:
    table = softmax_exp_table(input_scale)
    table.setflags(write=False)
    return table


@functools.lru_cache(maxsize=256)
def gelu_lut(in_scale: float, in_zp: int, out_scale: float, out_zp: int) -> np.ndarray:
    table = gelu_table(in_scale, in_zp, out_scale, out_zp)
    table.setflags(write=False)
    return table


def softmax(x: torch.Tensor, input_scale: float) -> torch.Tensor:
    """Softmax over the last axis; output codes at scale 1/256, zp -128."""
    return _t(engine_softmax(_np(x), exp_table(float(input_scale))).astype(np.int64), x)


def table_lookup(x: torch.Tensor, table: np.ndarray) -> torch.Tensor:
    return _t(lut(_np(x), table).astype(np.int64), x)


def matmul_qk(q: torch.Tensor, k: torch.Tensor, heads: int, p: dict) -> torch.Tensor:
    """[N, T, H*d] x2 -> scores [N, H, T, T] (``p``: q_zp, k_zp, multiplier, shift,
    output_zp)."""
    n, t, hd = q.shape
    qh = (q - int(p["q_zp"])).double().reshape(n, t, heads, hd // heads).transpose(1, 2)
    kh = (k - int(p["k_zp"])).double().reshape(n, t, heads, hd // heads).transpose(1, 2)
    acc = _exact(qh @ kh.transpose(-2, -1))
    return _t(requant_last(acc, int(p["multiplier"]), int(p["shift"]), p["output_zp"]), q)


def matmul_av(attn: torch.Tensor, v: torch.Tensor, heads: int, p: dict) -> torch.Tensor:
    """attn [N, H, T, T], v [N, T, H*d] -> [N, T, H*d] (``p``: attn_zp, v_zp, multiplier,
    shift, output_zp)."""
    n, t, hd = v.shape
    vh = (v - int(p["v_zp"])).double().reshape(n, t, heads, hd // heads).transpose(1, 2)
    acc = _exact(((attn - int(p["attn_zp"])).double() @ vh).transpose(1, 2).reshape(n, t, hd))
    return _t(requant_last(acc, int(p["multiplier"]), int(p["shift"]), p["output_zp"]), v)


def global_avgpool(x: torch.Tensor) -> torch.Tensor:
    """NCHW -> [N, C]: round_div(sum, H*W) (input scale and zero point)."""
    count = math.prod(x.shape[2:])
    sums = _np(x).reshape(x.shape[0], x.shape[1], -1).sum(axis=2)
    return _t(saturate(round_div(sums, count)), x)
