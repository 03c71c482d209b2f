"""Elementwise int8 ops: residual add with rescaling, and ReLU / ReLU6 as clamp ranges.

Add (TFLite's int8 scheme, with the engine's single-rounding ``requantize``): both inputs are
brought to a common fixed-point scale 2 * max(s1, s2) / 2**L, summed, and requantized:

    a_i = requantize((x1_i - zp1) << L, m1, e1)
    b_i = requantize((x2_i - zp2) << L, m2, e2)
    out_i = clamp(requantize(a_i + b_i, mo, eo) + zp_out, act_min, act_max)

where the Q31 pairs (m, e), m * 2**(e - 31), stand for the real multipliers

    m1 ~ s1 / (2 max(s1, s2)),  m2 ~ s2 / (2 max(s1, s2)),  mo ~ 2 max(s1, s2) / (2**L s_out)

with L = ``left_shift`` = 20: |x - zp| <= 255, so (x - zp) << 20 < 2**28 and a + b stays far
inside int32 while keeping 20 bits below the input LSB for the two roundings. The input
multipliers are <= 1/2, so e1, e2 <= 0.

ReLU and ReLU6 are fused as the clamp range [act_min, act_max] of the producing op
(:func:`activation_range`), as TFLite does.

``firmware/kernels/tf_add_s8.{c,h}`` implements ``add``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tinyformer.engine.intmath import (
    INT8_MAX,
    INT8_MIN,
    quantize_multiplier,
    requantize,
    requantize_s8,
)

LEFT_SHIFT = 20


def add_params(
    input1_scale: float,
    input1_zp: int,
    input2_scale: float,
    input2_zp: int,
    output_scale: float,
    output_zp: int,
    left_shift: int = LEFT_SHIFT,
) -> dict[str, int]:
    """Integer parameters of :func:`add` (keyword arguments) from the real scales."""
    twice_max = 2.0 * max(input1_scale, input2_scale)
    m1, e1 = quantize_multiplier(input1_scale / twice_max)
    m2, e2 = quantize_multiplier(input2_scale / twice_max)
    mo, eo = quantize_multiplier(twice_max / (2.0**left_shift * output_scale))
    return {
        "input1_zp": int(input1_zp),
        "input1_multiplier": m1,
        "input1_shift": e1,
        "input2_zp": int(input2_zp),
        "input2_multiplier": m2,
        "input2_shift": e2,
        "output_zp": int(output_zp),
        "output_multiplier": mo,
        "output_shift": eo,
        "left_shift": int(left_shift),
    }


def add(
    x1: np.ndarray,
    x2: np.ndarray,
    input1_zp: int,
    input1_multiplier: int,
    input1_shift: int,
    input2_zp: int,
    input2_multiplier: int,
    input2_shift: int,
    output_zp: int,
    output_multiplier: int,
    output_shift: int,
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
    left_shift: int = LEFT_SHIFT,
    requant: Callable[..., np.ndarray] = requantize,
) -> np.ndarray:
    """Residual add of two int8 tensors of the same shape (module docstring)."""
    if np.shape(x1) != np.shape(x2):
        raise ValueError(f"add needs equal shapes, got {np.shape(x1)} and {np.shape(x2)}")
    if not 0 <= left_shift <= 22:  # (x - zp) << left_shift must stay below 2**30
        raise ValueError(f"left_shift {left_shift} out of range")
    a = requant((np.asarray(x1, np.int64) - input1_zp) << left_shift, input1_multiplier,
                   input1_shift)  # fmt: skip
    b = requant((np.asarray(x2, np.int64) - input2_zp) << left_shift, input2_multiplier,
                   input2_shift)  # fmt: skip
    return requantize_s8(
        a + b, output_multiplier, output_shift, output_zp, act_min, act_max, requant
    )


def activation_range(activation: str, output_scale: float, output_zp: int) -> tuple[int, int]:
    """(act_min, act_max) of a fused "none", "relu" or "relu6" on an int8 output.

    As TFLite: real 0 and 6 quantized with round half away from zero, intersected with int8.
    """
    if activation == "none":
        return INT8_MIN, INT8_MAX
    lo = max(INT8_MIN, int(output_zp))
    if activation == "relu":
        return lo, INT8_MAX
    if activation == "relu6":
        six = int(output_zp) + math.floor(6.0 / output_scale + 0.5)
        return lo, max(lo, min(INT8_MAX, six))
    raise ValueError(f"unknown activation {activation!r}; expected none, relu or relu6")
