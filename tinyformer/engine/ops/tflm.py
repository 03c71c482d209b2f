"""TensorFlow Lite Micro's integer semantics, where they differ from the engine's own.

An imported ``.tflite`` model runs with ``graph.meta["rounding"] == "tflite"``: every
requantization is TFLite's double rounding (:func:`~tinyformer.engine.intmath.requantize_tflite`),
softmax is its gemmlowp fixed-point form (:func:`softmax_tflite`) and MEAN one requantization
of the sum (:func:`mean`). The pointwise int8 ops (LOGISTIC, QUANTIZE
int8 -> int8, ...) are functions of one int8 value: the importer evaluates TFLite Micro's
integer code for all 256 inputs here (``*_table``) and the engine runs them as ``lut``.

gemmlowp fixed point: a raw int32 with ``I`` integer bits stands for raw / 2^(31 - I);
products are rounding doubling high multiplies, rescales saturating shifts.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from tinyformer.engine.intmath import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    INT32_MIN,
    quantize_multiplier_tflite,
    requantize_tflite,
    rounding_divide_by_pot,
    rounding_doubling_high_mul,
    saturate,
)

SOFTMAX_DIFF_BITS = 5  # the exp's input: Q5.26
SOFTMAX_ACCUM_BITS = 12  # the sum of exps: Q12.19
# Rows below 2^(31 - 19 - 3) keep the sum below 2^28 and the output's shift within 31 bits.
SOFTMAX_MAX_ROW = 511
LOGISTIC_INPUT_BITS = 4


def _srdhm(a: int, b: int) -> int:
    return int(rounding_doubling_high_mul(np.array(a), b))


def _rdbpot(x: int, e: int) -> int:
    return int(rounding_divide_by_pot(np.array(x), e))


def _sat_shift_left(x: np.ndarray | int, e: int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingMultiplyByPOT for e > 0."""
    return np.clip(np.asarray(x, np.int64) << e, INT32_MIN, INT32_MAX)


def _exp_quarter(a: int) -> int:
    """exp on [-1/4, 0) (Q0.31 in and out): Taylor around -1/8."""
    x = a + (1 << 28)
    x2 = _srdhm(x, x)
    x3 = _srdhm(x2, x)
    x4 = _srdhm(x2, x2)
    poly = _rdbpot(_srdhm(_rdbpot(x4, 2) + x3, 715827883) + x2, 1)
    return 1895147668 + _srdhm(1895147668, x + poly)


_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))  # fmt: skip


def exp_on_negative_values(a: int, integer_bits: int) -> int:
    """gemmlowp's exp of a <= 0 (raw, ``integer_bits`` integer bits) as Q0.31."""
    frac = 31 - integer_bits
    quarter = 1 << (frac - 2)
    mod = (a & (quarter - 1)) - quarter
    result = _exp_quarter(int(_sat_shift_left(mod, integer_bits)))
    remainder = mod - a
    for exponent, multiplier in _EXP_BARREL:
        if integer_bits > exponent and remainder & (1 << (frac + exponent)):
            result = _srdhm(result, multiplier)
    return INT32_MAX if a == 0 else result


def _reciprocal_of_half_sum(a: np.ndarray) -> np.ndarray:
    """gemmlowp's Newton-Raphson 1 / ((1 + x) / 2) for x in [0, 1), Q0.31 raw in, Q2.29 out:
    from 48/17 - 32/17 d, three steps."""
    a = np.asarray(a, np.int64)
    total = a + INT32_MAX
    half = np.where(total >= 0, (total + 1) >> 1, -((-(total - 1)) >> 1))  # RoundingHalfSum
    x = 1515870810 + rounding_doubling_high_mul(half, -1010580540)
    for _ in range(3):
        err = (1 << 29) - rounding_doubling_high_mul(half, x)
        x = x + _sat_shift_left(rounding_doubling_high_mul(x, err), 2)
    return x


def one_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp's 1 / (1 + x) for x in [0, 1), Q0.31 raw in and out, elementwise."""
    return _sat_shift_left(_reciprocal_of_half_sum(a), 1)


def one_minus_x_over_one_plus_x(a: np.ndarray) -> np.ndarray:
    """gemmlowp's (1 - x) / (1 + x) for x in [0, 1), Q0.31 raw in and out, elementwise."""
    return _sat_shift_left(_reciprocal_of_half_sum(a) - (1 << 29), 2)


def _clz32(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.int64)
    bits = np.vectorize(lambda v: int(v).bit_length(), otypes=[np.int64])(x & 0xFFFFFFFF)
    return 32 - bits


# -- softmax ----------------------------------------------------------------------------------


def softmax_params(input_scale: float, beta: float) -> tuple[int, int, int]:
    """(input_multiplier, input_left_shift, diff_min) as TFLite Micro's Prepare computes them
    (PreprocessSoftmaxScaling, CalculateInputRadius) from the float32 scale and beta."""
    real = min(beta * input_scale * float(1 << (31 - SOFTMAX_DIFF_BITS)), 2.0**31 - 1.0)
    multiplier, left_shift = quantize_multiplier_tflite(real)
    if left_shift < 0:
        raise ValueError(f"softmax input scale {input_scale} x beta {beta} is too small")
    radius = (
        ((1 << SOFTMAX_DIFF_BITS) - 1) * float(1 << (31 - SOFTMAX_DIFF_BITS)) / (1 << left_shift)
    )
    return multiplier, left_shift, -math.floor(radius)


def softmax_exp_table_tflite(input_scale: float, beta: float) -> np.ndarray:
    """EXP[k], k = 0..255: TFLite's exp(beta * scale * -k) as Q0.31, 0 where -k < diff_min
    (those inputs are left out of the sum and output -128, as a 0 here does)."""
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    table = np.zeros(256, np.int64)
    for k in range(256):
        if -k >= diff_min:
            rescaled = _srdhm(-k * (1 << left_shift), multiplier)
            table[k] = exp_on_negative_values(rescaled, SOFTMAX_DIFF_BITS)
    return table.astype(np.int32)


def softmax_tflite(x: np.ndarray, exp_table: np.ndarray) -> np.ndarray:
    """x [..., N] int8 -> int8 (scale 1/256, zp -128), TFLite Micro's reference softmax:

    e_i   = EXP[max - x_i]
    sum   = sum_i RDBPOT(e_i, 12)                          (Q12.19)
    r, n  = GetReciprocal(sum): 1 / (sum 2^-n) in Q0.31, n = 12 - clz(sum)
    out_i = clamp(RDBPOT(SRDHM(r, e_i), n + 23) - 128)
    """
    x = np.asarray(x, np.int64)
    e = np.asarray(exp_table, np.int64)[x.max(axis=-1, keepdims=True) - x]
    total = rounding_divide_by_pot(e, SOFTMAX_ACCUM_BITS).sum(axis=-1, keepdims=True)
    headroom = _clz32(total)
    bits = SOFTMAX_ACCUM_BITS - headroom
    minus_one = ((total << headroom) & 0xFFFFFFFF) - (1 << 31)
    recip = one_over_one_plus_x(minus_one)
    out = rounding_divide_by_pot(rounding_doubling_high_mul(recip, e), bits + 23) + INT8_MIN
    return saturate(out).astype(np.int8)


# -- mean -------------------------------------------------------------------------------------


def mean_params(multiplier: int, shift: int, count: int) -> tuple[int, int]:
    """TFLite's integer MEAN folds 1 / count into the requantization of the sum (M, s of
    input_scale / output_scale): M' = floor(M 2^k / count), s' = s - k, with
    k = min(floor(log2 count), 32, 31 + s)."""
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return (multiplier << k) // count, shift - k


def mean(
    x: np.ndarray,
    input_zp: int,
    output_zp: int,
    multiplier: int,
    shift: int,
    requant: Callable[..., np.ndarray] = requantize_tflite,
) -> np.ndarray:
    """x [H][W][C] -> [C]: clamp(requant(sum over H, W of (x - input_zp), M, s) + output_zp),
    with (M, s) from :func:`mean_params`."""
    rows = np.asarray(x, np.int64).reshape(-1, x.shape[-1])
    acc = requant((rows - int(input_zp)).sum(axis=0), multiplier, shift)
    return saturate(acc + int(output_zp)).astype(np.int8)


# -- pointwise ops as 256-entry tables --------------------------------------------------------

_INT8 = np.arange(INT8_MIN, INT8_MAX + 1, dtype=np.int64)


def requantize_table(input_scale: float, input_zp: int, output_scale: float, output_zp: int):
    """QUANTIZE int8 -> int8 (TFLite's Requantize): MBQM(x - zp_in, M, s) + zp_out."""
    multiplier, shift = quantize_multiplier_tflite(input_scale / output_scale)
    out = requantize_tflite(_INT8 - input_zp, multiplier, shift) + output_zp
    return saturate(out).astype(np.int8)


def _q4_27_input(input_scale: float) -> tuple[int, int, int]:
    """LOGISTIC's and TANH's input stage: the Q31 multiplier and left shift that take an
    int8 value to Q4.27, and the radius beyond which the output saturates."""
    mantissa, left_shift = math.frexp(input_scale * float(1 << (31 - LOGISTIC_INPUT_BITS)))
    multiplier = math.floor(mantissa * (1 << 31) + 0.5)
    radius = math.floor(
        ((1 << LOGISTIC_INPUT_BITS) - 1)
        * float(1 << (31 - LOGISTIC_INPUT_BITS))
        / (1 << left_shift)
    )
    return multiplier, left_shift, radius


def logistic_table(input_scale: float, input_zp: int) -> np.ndarray:
    """LOGISTIC int8 (output scale 1/256, zp -128): the input to Q4.27 by a multiplier and a
    left shift, gemmlowp's logistic, rounded to Q0.8; saturated beyond the input radius."""
    multiplier, left_shift, radius = _q4_27_input(input_scale)
    out = np.empty(256, np.int64)
    for i, q in enumerate(_INT8):
        v = int(q) - input_zp
        if v <= -radius:
            out[i] = INT8_MIN
        elif v >= radius:
            out[i] = INT8_MAX
        else:
            a = int(requantize_tflite(np.array(v), multiplier, left_shift))
            pos = int(
                one_over_one_plus_x(np.array(exp_on_negative_values(-abs(a), LOGISTIC_INPUT_BITS)))
            )
            y = 1 << 30 if a == 0 else (pos if a > 0 else INT32_MAX - pos)
            out[i] = min(max(_rdbpot(y, 23) + INT8_MIN, INT8_MIN), INT8_MAX)
    return out.astype(np.int8)


# -- broadcasting binary ops, concatenation ---------------------------------------------------


ADDSUB_MODES = {"add_broadcast": 0, "sub": 1, "squared_difference": 2}  # IR op -> mode


def add_sub(
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
    left_shift: int = 20,
    mode: int = 1,
    requant: Callable[..., np.ndarray] = requantize_tflite,
) -> np.ndarray:
    """TFLite's int8 ADD (mode 0), SUB (1) or SQUARED_DIFFERENCE (2, left shift 7),
    broadcasting (numpy's rules): ADD's scheme (``ops/elementwise.py``) with the rescaled
    inputs added, subtracted, or subtracted and squared."""
    a = requant((np.asarray(x1, np.int64) - input1_zp) << left_shift, input1_multiplier,
                input1_shift)  # fmt: skip
    b = requant((np.asarray(x2, np.int64) - input2_zp) << left_shift, input2_multiplier,
                input2_shift)  # fmt: skip
    raw = [a + b, a - b, (a - b) ** 2][mode]
    out = requant(raw, output_multiplier, output_shift) + int(output_zp)
    return saturate(out, act_min, act_max).astype(np.int8)


def mul(
    x1: np.ndarray,
    x2: np.ndarray,
    input1_zp: int,
    input2_zp: int,
    output_zp: int,
    multiplier: int,
    shift: int,
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
    requant: Callable[..., np.ndarray] = requantize_tflite,
) -> np.ndarray:
    """TFLite's int8 MUL, broadcasting: clamp(requant((x1 - zp1)(x2 - zp2), M, s) + zp_out)
    with (M, s) of s1 s2 / s_out."""
    prod = (np.asarray(x1, np.int64) - input1_zp) * (np.asarray(x2, np.int64) - input2_zp)
    out = requant(prod, multiplier, shift) + int(output_zp)
    return saturate(out, act_min, act_max).astype(np.int8)


def broadcast_strides(shape: tuple[int, ...], out: tuple[int, ...]) -> list[int]:
    """Element strides of a contiguous ``shape`` read as the 4-D ``out`` (numpy's broadcasting,
    leading dimensions added): 0 along a dimension of size 1 that the output repeats."""
    padded = (1,) * (4 - len(shape)) + tuple(shape)
    strides, step = [0] * 4, 1
    for i in range(3, -1, -1):
        strides[i] = step if padded[i] > 1 or out[i] == 1 else 0
        step *= padded[i]
    return strides


def concat(x1: np.ndarray, x2: np.ndarray, axis: int) -> np.ndarray:
    """CONCATENATION of two int8 tensors of one quantization: the bytes, side by side."""
    return np.concatenate([x1, x2], axis=axis).astype(np.int8)


def _srdhm16(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul on int16."""
    if a == b == -(1 << 15):
        return (1 << 15) - 1
    ab = a * b
    total = ab + ((1 << 14) if ab >= 0 else 1 - (1 << 14))
    return int(math.copysign(abs(total) >> 15, total))


def _rdbpot16(x: int, e: int) -> int:
    """gemmlowp's RoundingDivideByPOT on int16: its mask wraps to int16 (-1 from e = 16 on,
    so a non-negative x then rounds up by one)."""
    mask = ((1 << e) - 1) & 0xFFFF
    mask -= (mask & 0x8000) << 1
    return (x >> e) + ((x & mask) > (mask >> 1) + (x < 0))


def _sat16(x: int) -> int:
    return max(-(1 << 15), min((1 << 15) - 1, x))


def _int16_multiplier(real: float) -> tuple[int, int]:
    """QuantizeMultiplier, then DownScaleInt32ToInt16Multiplier (round to Q15). Unlike
    quantize_multiplier_tflite (a kernel's shift), the exponent is not capped at 30: TFLite
    caps it only under single rounding, and HARD_SWISH's shifts saturate in int16 anyway."""
    mantissa, e = math.frexp(real)
    m = math.floor(mantissa * (1 << 31) + 0.5)
    if m == 1 << 31:
        m, e = m // 2, e + 1
    if e < -31:
        m, e = 0, 0
    return ((1 << 15) - 1 if m >= INT32_MAX - (1 << 15) else (m + (1 << 15)) >> 16), e


def hard_swish_table(
    input_scale: float, input_zp: int, output_scale: float, output_zp: int
) -> np.ndarray:
    """HARD_SWISH int8, TFLite's reference: the input on a 2^7 finer scale, a Q15 'relu-ish'
    factor in [0, 1] (x rescaled so that 3 is 2^15, saturated, shifted to [0, 1]) times the
    input on the output scale (a truncating doubling high multiply), then the output shift."""
    f32 = np.float32
    hires = f32(1.0 / 128.0) * f32(input_scale)
    out_m, out_e = _int16_multiplier(float(hires / f32(output_scale)))
    relu_m, relu_e = _int16_multiplier(float(hires / f32(3.0 / 32768.0)))
    if out_e > 0:
        raise ValueError("HARD_SWISH's output scale is below its input scale / 128")
    if relu_e > 31:  # TFLite Micro then shifts an int by 32 or more: undefined in C++
        raise ValueError(f"HARD_SWISH's input scale {input_scale} is too large (shift {relu_e})")
    out = np.empty(256, np.int64)
    for i, q in enumerate(_INT8):
        hi = (int(q) - input_zp) * 128
        pre = _srdhm16(hi, out_m)
        relu = hi
        if relu_e > 0:
            relu = _sat16(relu << (relu_e - 1))
        relu = _srdhm16(relu, relu_m)
        if relu_e > 0:
            relu = _sat16(relu << 1)
        if relu_e < 0:
            relu = _rdbpot16(relu, -relu_e)
        relu = (relu + (1 << 15)) >> 1
        prod = relu * pre
        preshift = (1 << 15) - 1 if relu == pre == -(1 << 15) else int(prod / (1 << 15))
        out[i] = _rdbpot16(_sat16(preshift), -out_e) + output_zp
    return saturate(out).astype(np.int8)


def _inv_sqrt(value: int) -> tuple[int, int]:
    """GetInvSqrtQuantizedMultiplierExp(value, reverse_shift=-1): 1 / sqrt(value) as a Q31
    multiplier and a (left) shift, by five Newton-Raphson steps in Q3.28."""
    if value <= 1:
        return INT32_MAX, 0
    shift = 11
    while value >= 1 << 29:
        value //= 4
        shift += 1
    pairs = (32 - value.bit_length() - 1) // 2 - 1
    shift -= pairs
    value <<= 2 * pairs
    half_input = _rdbpot(value >> 1, 1)
    x = 1 << 28  # F3 one
    for _ in range(5):
        x3 = int(_sat_shift_left(_srdhm(_srdhm(x, x), x), 6))
        diff = _srdhm(402653184, x) - _srdhm(half_input, x3)  # 1.5 in Q3.28
        x = int(_sat_shift_left((diff + 2**31) % 2**32 - 2**31, 3))
    x = _srdhm(x, 1518500250)  # sqrt(2) / 2 in Q0.31
    if shift < 0:
        x, shift = (x << -shift) & 0xFFFFFFFF, 0
        x -= (x & 0x80000000) << 1
    return x, -shift


def rsqrt_table(
    input_scale: float, input_zp: int, output_scale: float, output_zp: int
) -> np.ndarray:
    """RSQRT int8 (TFLite Micro's elementwise kernel): v = x - zp_in (0 -> 127),
    1 / sqrt(v) as a multiplier applied to 1 << 20, then the output rescale
    1 / (sqrt(s_in) s_out) with the 20 bits taken back. Inputs below zp_in are an error in
    TFLite Micro; their entries here are 127."""
    f32 = np.float32
    scale = 1.0 / float(f32(np.sqrt(f32(input_scale))) * f32(output_scale))
    multiplier, shift = quantize_multiplier_tflite(scale)
    out = np.full(256, INT8_MAX, np.int64)
    for i, q in enumerate(_INT8):
        v = int(q) - input_zp
        if v > 0:
            m, s = _inv_sqrt(v)
            data = int(requantize_tflite(np.array(1), m, s + 20))
            out[i] = int(requantize_tflite(np.array(data), multiplier, shift - 20)) + output_zp
    return saturate(out).astype(np.int8)


def tanh_table(input_scale: float, input_zp: int) -> np.ndarray:
    """TANH int8 (output scale 1/128, zp 0): the input to Q4.27 as LOGISTIC's, gemmlowp's
    tanh (-(1 - e) / (1 + e), e = exp(-2|x|), signed back), rounded to Q0.7; saturated
    beyond the input radius."""
    multiplier, left_shift, radius = _q4_27_input(input_scale)
    out = np.empty(256, np.int64)
    for i, q in enumerate(_INT8):
        v = int(q) - input_zp
        if v <= -radius:
            out[i] = INT8_MIN
        elif v >= radius:
            out[i] = INT8_MAX
        else:
            a = int(requantize_tflite(np.array(v), multiplier, left_shift))
            # exp(-2|x|): the same raw read with one more integer bit (ExactMulByPot<1>)
            e = exp_on_negative_values(-abs(a), LOGISTIC_INPUT_BITS + 1)
            t = int(one_minus_x_over_one_plus_x(np.array(e)))
            y = 0 if a == 0 else (t if a > 0 else -t)
            out[i] = min(max(_rdbpot(y, 24), INT8_MIN), INT8_MAX)
    return out.astype(np.int8)
