"""Average pooling on int8 NHWC tensors; output has the input's scale and zero point.

Averaging the raw int8 values is exact with respect to the zero point (the mean of
scale * (q - zp) is scale * (mean(q) - zp)), so no requantization is needed. As in TFLite:

    out = clamp(round_div(sum of the window's in-bounds values, count), act_min, act_max)
    round_div(a, n) = sign(a) * ((|a| + n // 2) // n)     (round half away from zero)

where ``count`` is the number of in-bounds taps: padded positions are left out of both the
sum and the count (TFLite's AveragePool with SAME padding). Global average pooling averages
every token: [H][W][C] or [T][C] -> [C].

Max pooling (:func:`maxpool`) takes each window's largest in-bounds value.

``firmware/kernels/tf_avgpool_s8.{c,h}``, ``tf_maxpool_s8.{c,h}`` and
``tf_global_avgpool_s8.{c,h}`` implement these.
"""

from __future__ import annotations

import numpy as np

from tinyformer.engine.intmath import INT8_MAX, INT8_MIN, saturate
from tinyformer.engine.ops.conv import Padding, patches


def round_div(acc: np.ndarray, count: np.ndarray | int) -> np.ndarray:
    """acc / count rounded half away from zero (count > 0), in integers."""
    acc = np.asarray(acc, np.int64)
    count = np.asarray(count, np.int64)
    return np.sign(acc) * ((np.abs(acc) + count // 2) // count)


def avgpool(
    x: np.ndarray,
    k_h: int,
    k_w: int,
    stride: int,
    padding: Padding = (0, 0, 0, 0),
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
) -> np.ndarray:
    """x [H][W][C] int8 -> [Ho][Wo][C] int8, window k_h x k_w (module docstring)."""
    sums = patches(np.asarray(x, np.int64), k_h, k_w, stride, padding, 0).sum(axis=(2, 3))
    ones = np.ones((*x.shape[:2], 1), np.int64)
    counts = patches(ones, k_h, k_w, stride, padding, 0).sum(axis=(2, 3))
    if np.any(counts == 0):
        raise ValueError("a pooling window lies entirely in the padding")
    return saturate(round_div(sums, counts), act_min, act_max).astype(np.int8)


def maxpool(
    x: np.ndarray,
    k_h: int,
    k_w: int,
    stride: int,
    padding: Padding = (0, 0, 0, 0),
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
) -> np.ndarray:
    """x [H][W][C] int8 -> [Ho][Wo][C] int8: the max of each window's in-bounds values
    (padding, filled with int8's minimum, never wins), clamped as TFLite's MaxPool2D."""
    win = patches(np.asarray(x, np.int64), k_h, k_w, stride, padding, INT8_MIN)
    return saturate(win.max(axis=(2, 3)), act_min, act_max).astype(np.int8)


def global_avgpool(x: np.ndarray, act_min: int = INT8_MIN, act_max: int = INT8_MAX) -> np.ndarray:
    """x [..., C] int8 (e.g. [H][W][C] or tokens [T][C]) -> [C] int8, mean over all rows."""
    rows = np.asarray(x, np.int64).reshape(-1, x.shape[-1])
    return saturate(round_div(rows.sum(axis=0), rows.shape[0]), act_min, act_max).astype(np.int8)
