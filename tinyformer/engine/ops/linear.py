"""Fully connected (linear) layer: int8 in, int8 weights per output channel, int8 out."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from tinyformer.engine.intmath import INT8_MAX, INT8_MIN, int_matmul, requantize, requantize_s8
from tinyformer.engine.kernel_headers import FC_TILE


def fc_scratch_bytes(k: int) -> int:
    """tf_fully_connected_s8_scratch_bytes(k): one FC_TILE-token tile of inputs widened to
    int16 (k // 4 groups x FC_TILE tokens x 8 bytes) plus 136 bytes (header, end marker, the
    assembly row loop's state, the k % 4 tail group)."""
    return (k // 4) * FC_TILE * 8 + 136


def fold_input_zero_point(
    weights: np.ndarray, bias: np.ndarray | None, input_zp: int
) -> np.ndarray:
    """Bias with the input zero point folded in: bias[j] - input_zp * sum_i weights[j, i].

    sum_i (x_i - zp) * w_ji + b_j == sum_i x_i * w_ji + folded_j, exactly, in int32.
    """
    w = np.asarray(weights, dtype=np.int64).reshape(weights.shape[0], -1)
    b = np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    folded = b - int(input_zp) * w.sum(axis=1)
    if np.any(np.abs(folded) >= 2**31):
        raise ValueError("folded bias overflows int32")
    return folded.astype(np.int32)


def fully_connected(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    input_zp: int,
    output_zp: int,
    multiplier: np.ndarray,
    shift: np.ndarray,
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
    requant: Callable[..., np.ndarray] = requantize,
) -> np.ndarray:
    """x [n, k] int8, weights [m, k] int8, bias [m] int32 -> [n, m] int8.

    out = clamp(requant(sum_i (x_i - input_zp) * w_ji + b_j) + output_zp), ``requant`` the
    model's requantization (the engine's or TFLite's, :mod:`tinyformer.engine.intmath`).
    """
    acc = int_matmul(np.asarray(x, np.int64) - int(input_zp), np.asarray(weights).T)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return requantize_s8(acc, multiplier, shift, output_zp, act_min, act_max, requant)
