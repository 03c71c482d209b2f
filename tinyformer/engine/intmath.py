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

``firmware/kernels/tf_math.h`` implements exactly the same functions in C.
"""

from __future__ import annotations

import functools
import math

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


def quantize_multiplier(real: float) -> tuple[int, int]:
    """Split a positive real multiplier into (Q31 multiplier, shift), TFLite style.

    Returns (0, 0) for real == 0. Multipliers too small to represent become (0, 0);
    too large ones raise, since they mean the scales are nonsensical.
    """
    if real < 0 or not math.isfinite(real):
        raise ValueError(f"multiplier must be finite and >= 0, got {real}")
    if real == 0.0:
        return 0, 0
    mantissa, exponent = math.frexp(real)  # real = mantissa * 2**exponent, mantissa in [0.5, 1)
    q = round(mantissa * (1 << 31))
    if q == 1 << 31:
        q //= 2
        exponent += 1
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


def saturate(x: np.ndarray, lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """Clamp to [lo, hi]."""
    return np.clip(x, lo, hi)


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
