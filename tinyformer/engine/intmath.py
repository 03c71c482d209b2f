"""Integer arithmetic shared by every op: the one definition of requantization.

Conventions follow TFLite Micro / CMSIS-NN:
- activations are int8 with a zero point (real = scale * (q - zero_point));
- weights are symmetric int8 (zero point 0), per output channel for conv and linear;
- biases are int32 with scale = input_scale * weight_scale;
- a real multiplier m > 0 is stored as a Q31 ``multiplier`` in [2**30, 2**31) and a
  ``shift`` (positive = left), so m = multiplier * 2**(shift - 31).

Requantization uses single rounding (as CMSIS-NN with ``CMSIS_NN_USE_SINGLE_ROUNDING``
and TFLite with ``TFLITE_SINGLE_ROUNDING``): one 64-bit product, one rounding shift,
ties rounded towards +inf:

    requantize(x, M, s) = ((x * M) >> (30 - s) + 1) >> 1        (s <= 30)

Models imported from TensorFlow Lite carry TFLite Micro's own semantics instead
(``graph.meta["rounding"] == "tflite"``, :func:`requantize_tflite`): its reference kernels
round twice, a rounding doubling high multiply then a rounding shift, ties away from zero.

``firmware/kernels/tf_math.h`` implements exactly the same functions in C (the TFLite form
when the firmware is built with ``TF_ROUNDING_TFLITE``).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from threadpoolctl import ThreadpoolController

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
MIN_SHIFT, MAX_SHIFT = -31, 30


def weight_scales(amax: np.ndarray) -> np.ndarray:
    """Per-output-channel weight scales from each channel's max |w|: amax / 127.

    An all-zero channel (a fully pruned row) takes the largest live channel's scale (1 when
    none is live): its scale only sets the bias's precision, and a scale in the range of the
    others keeps its requantization multiplier in theirs, so the kernels' fast paths (which
    need every row's shift in a range) still apply to the layer.
    """
    amax = np.asarray(amax, np.float64)
    fill = amax.max() / 127.0 if amax.size and amax.max() > 0 else 1.0
    return np.where(amax > 0, amax / 127.0, fill)


def quantize_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric int8 per output channel (axis 0), in float64: (int8 weights, scales)."""
    w = np.asarray(w, np.float64)
    flat = w.reshape(w.shape[0], -1)
    scales = weight_scales(np.abs(flat).max(axis=1))
    q = np.clip(np.round(flat / scales[:, None]), -127, 127).astype(np.int8)
    return q.reshape(w.shape), scales


def _frexp_q31(real: float, round_q31: Callable[[float], int]) -> tuple[int, int]:
    """real = q * 2**(exponent - 31) with q the Q31 mantissa in [2**30, 2**31), rounded by
    ``round_q31``; (0, 0) for 0. The part both QuantizeMultiplier forms share: they differ
    in the rounding and in what an out-of-range exponent becomes."""
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"multiplier must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2**exponent, mantissa in [0.5, 1)
    q = round_q31(mantissa * (1 << 31))
    if q == 1 << 31:
        q //= 2
        exponent += 1
    return q, exponent


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real multiplier into (Q31 multiplier, shift), TFLite style.

    Returns (0, 0) for real == 0. Multipliers too small to represent become (0, 0);
    too large ones raise, since they mean the scales are nonsensical.
    """
    q, exponent = _frexp_q31(real, round)  # Python's round: ties to even
    if exponent < MIN_SHIFT:
        return 0, 0
    if exponent > MAX_SHIFT:
        raise ValueError(f"multiplier {real} too large to requantize (shift {exponent} > 30)")
    return int(q), int(exponent)


def quantize_multipliers(reals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vector form of :func:`quantize_multiplier` (int32 multipliers, int32 shifts)."""
    pairs = [quantize_multiplier(float(r)) for r in np.asarray(reals, dtype=np.float64).ravel()]
    mult = np.array([p[0] for p in pairs], dtype=np.int64).reshape(np.shape(reals))
    shift = np.array([p[1] for p in pairs], dtype=np.int64).reshape(np.shape(reals))
    return mult.astype(np.int32), shift.astype(np.int32)


def requantize(x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int) -> np.ndarray:
    """Scale int32 ``x`` by multiplier * 2**(shift - 31) with single rounding.

    Broadcasts ``multiplier``/``shift`` against ``x`` (per-channel: last axis). The
    result is int64 holding int32-range values; callers add the zero point and clamp.
    """
    x = np.asarray(x, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    total = 30 - s
    prod = x * m  # |x| < 2**31 and m < 2**31, so the product fits in int64
    return ((prod >> total) + 1) >> 1


@functools.cache
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def int_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` of integer arrays as int64, exactly, through float64 BLAS: 10-40x numpy's
    integer matmul, which is a plain loop. Exact while every partial sum is an integer below
    2**53: entries below 2**16 (int8 values less a zero point are below 2**9) and a depth
    below 2**21. One BLAS thread: the reference runs beside an emulator that takes a core,
    and BLAS threads spinning for a busy core made it 20x slower, not faster."""
    if a.shape[-1] >= 2**21:
        raise ValueError(f"matmul depth {a.shape[-1]} is too deep for exact float64 sums")
    with _blas().limit(limits=1, user_api="blas"):
        product = np.asarray(a, np.float64) @ np.asarray(b, np.float64)
    return product.astype(np.int64)


def rounding_doubling_high_mul(a: np.ndarray, b: np.ndarray | int) -> np.ndarray:
    """gemmlowp's SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties away from
    zero, in int32 (INT32_MIN * INT32_MIN saturates to INT32_MAX)."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    prod = a * b
    nudge = np.where(prod >= 0, 1 << 30, 1 - (1 << 30))
    total = prod + nudge
    # C's division truncates towards zero; numpy's // floors.
    high = np.where(total >= 0, total >> 31, -((-total) >> 31))
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x: np.ndarray, exponent: np.ndarray | int) -> np.ndarray:
    """gemmlowp's RoundingDivideByPOT: x / 2^exponent rounded, ties away from zero."""
    x = np.asarray(x, np.int64)
    e = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << e) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> e) + (remainder > threshold)


def requantize_tflite(
    x: np.ndarray, multiplier: np.ndarray | int, shift: np.ndarray | int
) -> np.ndarray:
    """TFLite's MultiplyByQuantizedMultiplier: the left part of the shift first (saturating
    to int32, as the int32 product wraps in C only beyond it), then a rounding doubling high
    multiply, then a rounding right shift. Broadcasts as :func:`requantize`."""
    s = np.asarray(shift, np.int64)
    shifted = np.asarray(x, np.int64) << np.maximum(s, 0)
    wrapped = (shifted + 2**31) % 2**32 - 2**31  # int32 arithmetic, as the C does
    return rounding_divide_by_pot(
        rounding_doubling_high_mul(wrapped, multiplier), np.maximum(-s, 0)
    )


def quantize_multiplier_tflite(real: float) -> tuple[int, int]:
    """TFLite's QuantizeMultiplier: frexp, the mantissa rounded half away from zero to Q31
    (std::round), shifts below -31 flush to (0, 0), above 30 saturate."""
    q, exponent = _frexp_q31(real, lambda v: math.floor(v + 0.5))
    if exponent < MIN_SHIFT:
        return 0, 0
    if exponent > MAX_SHIFT:
        return INT32_MAX, MAX_SHIFT
    return int(q), int(exponent)


def saturate(x: np.ndarray, lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """Clamp to [lo, hi]."""
    return np.clip(x, lo, hi)


def requantize_s8(
    acc: np.ndarray,
    multiplier: np.ndarray | int,
    shift: np.ndarray | int,
    output_zp: int,
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
    requant: Callable[..., np.ndarray] = requantize,
) -> np.ndarray:
    """The int8 output stage of every op with an int32 accumulator: requant(acc) (the
    engine's or TFLite's rounding) + output_zp, clamped to [act_min, act_max]."""
    out = requant(acc, np.asarray(multiplier), np.asarray(shift)) + int(output_zp)
    return saturate(out, act_min, act_max).astype(np.int8)


def tflite_requant_table(
    multiplier: np.ndarray, shift: np.ndarray, output_zp: int, acc_bound: int
) -> np.ndarray | None:
    """Per channel (M, c, n, 0), int32 [C][4], for the kernels' TFLite requantization from a
    table (:func:`requantize_tflite` + output_zp, ties as TFLite):

        h = (x M + 2^30) >> 31,   out = (h + c - (h < 0)) >> n

    with n = -shift and c = (2 output_zp + 1) 2^(n-1) = 2^(n-1) + output_zp 2^n: the rounding
    shift's tie rule and the zero point in one add, exact while |h| + |c| < 2^31, so for
    accumulators within +-``acc_bound`` < 2^30 (|h| <= |x|) and n in [1, 22]. None when a
    channel does not qualify or output_zp is not int8.
    """
    n = -np.asarray(shift, np.int64).reshape(-1)
    m = np.asarray(multiplier, np.int64).reshape(-1)
    if not INT8_MIN <= output_zp <= INT8_MAX or acc_bound >= 1 << 30:
        return None
    if np.any((n < 1) | (n > 22)):
        return None
    c = (2 * output_zp + 1) * (np.int64(1) << (n - 1))
    return np.stack([m, c, n, np.zeros_like(n)], axis=1).astype(np.int32)


def smlal_requant_table(
    multiplier: np.ndarray, shift: np.ndarray, output_zp: int
) -> np.ndarray | None:
    """Per channel (M, lo, hi, sh), int32 [C][4], for the kernels' two-instruction
    requantization, SMLAL then an arithmetic shift:

        requantize(x, M, s) + output_zp == ((hi:lo + x * M) >> 32) >> sh

    with sh = -1 - s and hi:lo = (2 output_zp + 1) 2^(31 + sh) as a 64-bit value (lo its
    low word, unsigned: 2^31 when sh = 0, else 0). Both sides are
    floor(x M / 2^(31 - s) + output_zp + 1/2): exact for sh >= 0 (s <= -1), and the high
    word fits 32 bits for sh <= 21. A dead channel (M = 0, output zp whatever its shift)
    takes sh = 0. None when a channel does not qualify or output_zp is not int8.
    """
    m = np.asarray(multiplier, np.int64).reshape(-1)
    sh = -1 - np.asarray(shift, np.int64).reshape(-1)
    if not INT8_MIN <= output_zp <= INT8_MAX:
        return None
    sh = np.where(m == 0, 0, sh)
    if np.any((sh < 0) | (sh > 21)):
        return None
    offset = (2 * output_zp + 1) * (np.int64(1) << (31 + sh))
    lo, hi = offset & 0xFFFFFFFF, offset >> 32
    return np.stack([m, lo - (lo >> 31 << 32), hi, sh], axis=1).astype(np.int32)
