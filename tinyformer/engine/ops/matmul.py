"""Attention batch matmuls, per head, on tokens-major tensors: Q·Kᵀ and A·V.

Both operands are runtime int8 activations with zero points; accumulation is exact in
int32 (reduction length up to 33025), then one requantization, output zero point, clamp.
The attention scale 1/sqrt(d) belongs in the Q·Kᵀ multiplier.

Layouts (h = head, d = head dim, heads side by side along the channel axis):
    q      [Tq][H*d]     head h = columns h*d .. h*d+d-1 (rows may be strided in C)
    k, v   [Tk][H*d]     same (e.g. views into one fused QKV projection [T][3*H*d])
    scores [H][Tq][Tk]   head-major; softmax runs over its last axis
    attn   [H][Tq][Tk]
    out    [Tq][H*d]     heads concatenated: the input layout of the output projection

    scores[h][i][j] = clamp(requantize(sum_c (q[i][h*d+c] - q_zp) * (k[j][h*d+c] - k_zp))
                            + output_zp)
    out[i][h*d+c]   = clamp(requantize(sum_j (attn[h][i][j] - attn_zp) * (v[j][h*d+c] - v_zp))
                            + output_zp)

``firmware/kernels/tf_batch_matmul_s8.{c,h}`` implements both.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinyformer.engine.intmath import requantize, requantize_s8

MAX_REDUCTION = (2**31 - 1) // (255 * 255)  # products of zp-corrected operands fit int32


def bmm_scratch_bytes(k: int, cols: int) -> int:
    """tf_bmm_scratch_bytes(k, cols): the 2-row left tile and state, then 4-column blocks."""
    return 16 * ((k + 3) // 4) * (1 + 2 * ((cols + 3) // 4)) + 40


def _heads(x: np.ndarray, zp: int, heads: int) -> np.ndarray:
    """[T][H*d] int8 -> [H][T][d] int64 with the zero point subtracted."""
    t, hd = x.shape
    if hd % heads:
        raise ValueError(f"width {hd} is not a multiple of {heads} heads")
    return (np.asarray(x, np.int64) - int(zp)).reshape(t, heads, hd // heads).transpose(1, 0, 2)


def batch_matmul_qk(
    q: np.ndarray,
    k: np.ndarray,
    q_zp: int,
    k_zp: int,
    heads: int,
    multiplier: int,
    shift: int,
    output_zp: int,
    requant: Callable[..., np.ndarray] = requantize,
) -> np.ndarray:
    """q [Tq][H*d], k [Tk][H*d] int8 -> scores [H][Tq][Tk] int8 (``requant``: TFLite's
    BATCH_MATMUL imports as this op, with TFLite's rounding)."""
    if q.shape[1] // heads > MAX_REDUCTION:
        raise ValueError("head dim too large for int32 accumulation")
    acc = _heads(q, q_zp, heads) @ _heads(k, k_zp, heads).transpose(0, 2, 1)
    return requantize_s8(acc, multiplier, shift, output_zp, requant=requant)


def batch_matmul_av(
    attn: np.ndarray,
    v: np.ndarray,
    attn_zp: int,
    v_zp: int,
    multiplier: int,
    shift: int,
    output_zp: int,
) -> np.ndarray:
    """attn [H][Tq][Tk], v [Tk][H*d] int8 -> out [Tq][H*d] int8."""
    heads, tq, tk = attn.shape
    if tk > MAX_REDUCTION:
        raise ValueError("sequence too long for int32 accumulation")
    acc = (np.asarray(attn, np.int64) - int(attn_zp)) @ _heads(v, v_zp, heads)  # [H][Tq][d]
    return requantize_s8(acc.transpose(1, 0, 2).reshape(tq, -1), multiplier, shift, output_zp)
