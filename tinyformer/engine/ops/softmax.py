"""Integer softmax over the last axis: int8 (scale, zp) -> int8 with scale 1/256, zp -128.

Softmax only sees differences to the row maximum, so the input zero point cancels and the
input scale enters only through a 256-entry table built offline:

    EXP[k] = round_half_up(2^Q * exp(-beta * input_scale * k)),  k = 0..255   (int32)

(``softmax_exp_table``; exp is evaluated in Python's decimal arithmetic at 40 significant
digits, which is correctly rounded, so the table is the same on every machine.) Per row
x[0..N-1], all integer:

    m     = max_i x_i
    e_i   = EXP[m - x_i]                    (e at the maximum is 2^Q)
    sum   = sum_i e_i                       (int32: needs N * 2^Q < 2^31)
    L     = bitlen(sum)                     (sum in [2^(L-1), 2^L))
    r     = (2^(30+L) - 1) // sum           (in [2^30, 2^31): one division per row)
    out_i = clamp(requantize(e_i, r, 9 - L) - 128, -128, 127)

requantize(e, r, 9 - L) = round(e * r / 2^(22+L)) ~= round(256 * e_i / sum).
``firmware/kernels/tf_softmax_s8.{c,h}`` implements exactly this.
"""

from __future__ import annotations

import decimal

import numpy as np

from tinyformer.engine.intmath import INT32_MAX, requantize, saturate

OUTPUT_SCALE = 1.0 / 256.0
OUTPUT_ZP = -128
EXP_BITS = 20  # default Q of the table: rows up to 2047 long


def softmax_exp_table(input_scale: float, beta: float = 1.0, q_bits: int = EXP_BITS) -> np.ndarray:
    """EXP[k] = round_half_up(2**q_bits * exp(-beta * input_scale * k)) as int32[256]."""
    if not 0 <= q_bits <= 30 or not input_scale > 0 or not beta > 0:
        raise ValueError("need input_scale > 0, beta > 0 and 0 <= q_bits <= 30")
    with decimal.localcontext() as ctx:
        ctx.prec = 40
        step = decimal.Decimal(float(input_scale)) * decimal.Decimal(float(beta))
        one = decimal.Decimal(1 << q_bits)
        table = [
            int((one * (-step * k).exp()).to_integral_value(decimal.ROUND_HALF_UP))
            for k in range(256)
        ]
    return np.array(table, np.int32)


def softmax(x: np.ndarray, exp_table: np.ndarray) -> np.ndarray:
    """x [..., N] int8 -> [..., N] int8 (scale 1/256, zp -128), softmax over the last axis."""
    x = np.asarray(x, np.int64)
    table = np.asarray(exp_table, np.int64)
    e = table[x.max(axis=-1, keepdims=True) - x]
    total = e.sum(axis=-1, keepdims=True)
    if np.any(total > INT32_MAX):
        raise ValueError("softmax row too long for the table's Q (N * EXP[0] >= 2^31)")
    bits = np.vectorize(lambda v: int(v).bit_length(), otypes=[np.int64])(total)
    recip = ((np.int64(1) << (30 + bits)) - 1) // total
    out = requantize(e, recip, 9 - bits) + OUTPUT_ZP
    return saturate(out).astype(np.int8)
