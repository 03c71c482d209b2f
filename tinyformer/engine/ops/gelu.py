"""Integer GELU as a 256-entry int8 table, and the generic table lookup that applies it.

An int8 input with a known (scale, zp) takes only 256 values, so any elementwise function
is exactly a table ``table[q + 128]``; the runtime kernel is ``tf_lut_s8``. The GELU table
comes from I-BERT's integer-only GELU (i-GELU, Kim et al. 2021), evaluated on v = q - zp
with scale S = input_scale:

    erf(z) ~= L(z) = sgn(z) * (a * (min(|z|, -b) + b)^2 + 1),   a = -0.2888, b = -1.769

    i-erf (on integer u with scale S_e = S / sqrt(2)):
        q_b = floor(b / S_e),  q_c = floor(1 / (a * S_e^2))
        q_erf = sgn(u) * ((min(|u|, -q_b) + q_b)^2 + q_c),   scale S_erf = a * S_e^2
    i-GELU:
        q_1 = floor(1 / S_erf)
        q_gelu = v * (q_erf + q_1),                          scale S_gelu = S * S_erf / 2

    table[q + 128] = clamp(floor(q_gelu * S_gelu / output_scale + 1/2) + output_zp)

The integer steps use Python ints (no overflow); the constants q_b, q_c, q_1 come from
IEEE-754 double divisions (correctly rounded, so reproducible) and the last rescale is
exact rational arithmetic, so the table is the same on every machine.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from tinyformer.engine.intmath import INT8_MAX, INT8_MIN

IGELU_A = -0.2888
IGELU_B = -1.769


def _sgn(v: int) -> int:
    return (v > 0) - (v < 0)


def i_erf(u: int, scale: float) -> tuple[int, float]:
    """I-BERT's integer erf of u * scale: (q, q's scale)."""
    q_b = math.floor(IGELU_B / scale)
    q_c = math.floor(1.0 / (IGELU_A * scale * scale))
    q = (min(abs(u), -q_b) + q_b) ** 2 + q_c
    return _sgn(u) * q, IGELU_A * scale * scale


def i_gelu(v: int, scale: float) -> tuple[int, float]:
    """I-BERT's integer GELU of v * scale: (q, q's scale)."""
    q_erf, s_erf = i_erf(v, scale / math.sqrt(2.0))
    q_one = math.floor(1.0 / s_erf)
    return v * (q_erf + q_one), scale * s_erf / 2.0


def gelu_table(
    input_scale: float, input_zp: int, output_scale: float, output_zp: int
) -> np.ndarray:
    """int8[256] GELU table for tf_lut_s8: entry q + 128 is GELU of input q."""
    table = []
    for q in range(INT8_MIN, INT8_MAX + 1):
        q_gelu, s_gelu = i_gelu(q - int(input_zp), float(input_scale))
        real = Fraction(q_gelu) * Fraction(s_gelu) / Fraction(float(output_scale))
        out = math.floor(real + Fraction(1, 2)) + int(output_zp)
        table.append(min(max(out, INT8_MIN), INT8_MAX))
    return np.array(table, np.int8)


def lut(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Elementwise table lookup: out = table[x + 128] (any shape, int8 -> int8)."""
    t = np.asarray(table, np.int8)
    if t.shape != (256,):
        raise ValueError(f"table must have 256 entries, got {t.shape}")
    return t[np.asarray(x, np.int64) + 128]
