"""2-D convolutions on int8 NHWC tensors (batch 1: [H][W][C]): dense and depthwise.

Conventions (TFLite / CMSIS-NN):
    x        [H][W][Cin]            int8, zero point ``input_zp``
    weights  [Cout][kh][kw][Cin]    int8 symmetric (OHWI) for conv2d,
             [kh][kw][C]            int8 symmetric (1HWC, channel multiplier 1) for depthwise
    bias     [Cout]                 int32 (scale input_scale * weight_scale[c]) or None
    padding  (top, left, bottom, right), explicit, in input pixels
    out      [Ho][Wo][Cout]         Ho = (H + top + bottom - kh) // stride + 1 (same for Wo)

    out[y][x][c] = clamp(requantize(acc, multiplier[c], shift[c]) + output_zp, act_min, act_max)
    acc (conv2d)    = bias[c] + sum_{i,j,k} (xp[y*s + i][x*s + j][k] - input_zp) * w[c][i][j][k]
    acc (depthwise) = bias[c] + sum_{i,j}   (xp[y*s + i][x*s + j][c] - input_zp) * w[i][j][c]

where ``xp`` is ``x`` padded with ``input_zp``: a padded tap is a real zero and contributes
nothing. The conv2d C kernel takes the input zero point folded into the bias
(:func:`fold_conv_bias`: bias - input_zp * sum of the channel's weights). That is exact only if
every tap, padded ones included, multiplies an x equal to input_zp where there is padding, so
the kernel fills the padded positions of its im2col buffer with input_zp. The depthwise kernel
takes the plain bias (:func:`depthwise_bias`) and subtracts input_zp from each input as it
widens it (SXTAB16, free), so it skips padded taps, which dominate small maps with big kernels.
The accumulator must fit int32: |x - input_zp| * |w| <= 255 * 128 < 2**15, so any data is
safe while kh * kw * Cin < 2**15 and the bias stays small (the C kernels wrap, as SMLAD does).

``firmware/kernels/tf_conv2d_s8.{c,h}`` and ``tf_depthwise_conv2d_s8.{c,h}`` implement these.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from tinyformer.engine.intmath import INT8_MAX, INT8_MIN, int_matmul, requantize, requantize_s8
from tinyformer.engine.ops.linear import FC_TILE, fc_scratch_bytes, fold_input_zero_point

Padding = tuple[int, int, int, int]  # top, left, bottom, right


def output_size(size: int, k: int, stride: int, pad_before: int, pad_after: int) -> int:
    """Output length along one axis; raises if the window does not fit once."""
    span = size + pad_before + pad_after - k
    if span < 0 or stride < 1 or min(pad_before, pad_after) < 0:
        raise ValueError(f"kernel {k} stride {stride} does not fit {size} + padding")
    return span // stride + 1


def same_padding(h: int, w: int, k_h: int, k_w: int, stride: int) -> Padding:
    """TFLite "SAME" padding (output = ceil(in / stride)); the odd pixel goes bottom/right."""

    def axis(size: int, k: int) -> tuple[int, int]:
        total = max((-(-size // stride) - 1) * stride + k - size, 0)
        return total // 2, total - total // 2

    (top, bottom), (left, right) = axis(h, k_h), axis(w, k_w)
    return top, left, bottom, right


def conv2d_scratch_bytes(in_c: int, k_h: int, k_w: int) -> int:
    """tf_conv2d_s8_scratch_bytes: the FC kernel's scratch plus TF_CONV_PIXELS (= the FC
    tile, 6) im2col patches."""
    depth = k_h * k_w * in_c
    return fc_scratch_bytes(depth) + FC_TILE * depth


def patches(
    x: np.ndarray, k_h: int, k_w: int, stride: int, padding: Padding, fill: float
) -> np.ndarray:
    """[Ho][Wo][kh][kw][C] windows of ``x`` padded with ``fill`` (a read-only view)."""
    top, left, bottom, right = (int(p) for p in padding)
    h, w, _ = x.shape
    output_size(h, k_h, stride, top, bottom)  # validates
    output_size(w, k_w, stride, left, right)
    xp = np.pad(x, ((top, bottom), (left, right), (0, 0)), constant_values=fill)
    win = sliding_window_view(xp, (k_h, k_w), axis=(0, 1))  # [H'][W'][C][kh][kw]
    return win[::stride, ::stride].transpose(0, 1, 3, 4, 2)


def fold_conv_bias(weights: np.ndarray, bias: np.ndarray | None, input_zp: int) -> np.ndarray:
    """conv2d bias for the C kernel: bias[c] - input_zp * sum(weights[c]) (OHWI weights)."""
    return fold_input_zero_point(weights, bias, input_zp)


def depthwise_bias(weights: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """depthwise bias for the C kernel: the layer's own (zeros for None), int32, not folded:
    the kernel subtracts input_zp from each input, so padded taps can simply be skipped."""
    c = np.asarray(weights).shape[-1]
    return np.zeros(c, np.int32) if bias is None else np.asarray(bias, np.int32)


def depthwise_weights_s16(weights: np.ndarray) -> np.ndarray:
    """depthwise weights [k_h][k_w][C] int8 as the C kernel reads them, uint32
    [ceil(C / 4)][k_h][k_w][2]: per group of 4 channels c = 4g.. and tap, the int16 pairs
    (w[c], w[c + 2]) and (w[c + 1], w[c + 3]), low half first (SXTB16's order), zero past C."""
    w = np.asarray(weights, np.int8)
    kh, kw, c = w.shape
    groups = -(-c // 4)
    lanes = np.zeros((kh, kw, 4 * groups), np.int16)
    lanes[..., :c] = w
    lanes = lanes.reshape(kh, kw, groups, 4).transpose(2, 0, 1, 3).view(np.uint16)
    words = lanes[..., [0, 1]].astype(np.uint32) | lanes[..., [2, 3]].astype(np.uint32) << 16
    return np.ascontiguousarray(words)


def conv2d(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    input_zp: int,
    output_zp: int,
    multiplier: np.ndarray,
    shift: np.ndarray,
    stride: int = 1,
    padding: Padding = (0, 0, 0, 0),
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
    requant: Callable[..., np.ndarray] = requantize,
) -> np.ndarray:
    """x [H][W][Cin], weights [Cout][kh][kw][Cin] -> [Ho][Wo][Cout] int8 (module docstring)."""
    cout, k_h, k_w, cin = weights.shape
    if x.shape[2] != cin:
        raise ValueError(f"input has {x.shape[2]} channels, weights expect {cin}")
    win = patches(x, k_h, k_w, stride, padding, int(input_zp))
    ho, wo = win.shape[:2]
    cols = win.reshape(ho, wo, -1).astype(np.int64) - int(input_zp)
    acc = int_matmul(cols, np.asarray(weights).reshape(cout, -1).T)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return requantize_s8(acc, multiplier, shift, output_zp, act_min, act_max, requant)


def depthwise_conv2d(
    x: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray | None,
    input_zp: int,
    output_zp: int,
    multiplier: np.ndarray,
    shift: np.ndarray,
    stride: int = 1,
    padding: Padding = (0, 0, 0, 0),
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
    requant: Callable[..., np.ndarray] = requantize,
) -> np.ndarray:
    """x [H][W][C], weights [kh][kw][C] -> [Ho][Wo][C] int8 (module docstring)."""
    k_h, k_w, c = weights.shape
    if x.shape[2] != c:
        raise ValueError(f"input has {x.shape[2]} channels, weights expect {c}")
    win = patches(x, k_h, k_w, stride, padding, int(input_zp))
    w = np.asarray(weights, np.int32)
    # Tap by tap in int32, exact: each tap adds at most 255 * 128 < 2**15 and there are
    # kh * kw < 2**16 taps. No [Ho][Wo][kh][kw][C] int64 temporary: ~50x faster at 32x32.
    acc = np.zeros((*win.shape[:2], c), np.int32)
    for i in range(k_h):
        for j in range(k_w):
            acc += (win[:, :, i, j].astype(np.int32) - int(input_zp)) * w[i, j]
    acc = acc.astype(np.int64)
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64)
    return requantize_s8(acc, multiplier, shift, output_zp, act_min, act_max, requant)
