"""Integer LayerNorm (TinyFormer's Scaled-LayerNorm): int8 tokens [T][D] -> int8 [T][D].

Mean and variance are taken in integers over the raw int8 row; the normalised value is an
int32 in Q.F_BITS; gamma and beta are applied in output LSBs and one rounding shift gives
the int8 output. Input scale and zero point cancel in (x - mean) / std, so the kernel does
not need them (only ``eps`` depends on the input scale).

Per row x[0..D-1] (int8), exact integer arithmetic:

    sum  = sum_i x_i                                   (int32)
    sq   = sum_i x_i^2                                 (int32)
    S    = D * sq - sum^2 + eps                        (int64, = D^2 * (variance + eps))
    (m, p) = rsqrt_multiplier(S)                        m * 2^(p-32) ~= 2^F / sqrt(S)
    c_i  = D * x_i - sum                                (int32, = D * (x_i - mean))
    n_i  = ((c_i << p) * m + 2^31) >> 32                (SMMULR; (x_i - mean) / std in Q.F)
    out_i = clamp(((n_i * G_i + B_i * 2^F + 2^31) >> 32) + output_zp, -128, 127)

with rsqrt_multiplier(S), S > 0 (m = p = 0 for S = 0, where every c_i is 0), F = 12:

    e = (62 - bitlen(S)) // 2                 so that S * 4^e is in [2^60, 2^62)
    r = isqrt(S * 4^e)                        exact floor square root, r in [2^30, 2^31)
    q = (2^61 - 1) // r                       in [2^30, 2^31), ~ 2^(61-e) / sqrt(S)
    p = e + F - 29, m = q            if e + F >= 29
    p = 0,          m = q >> (29 - e - F)  otherwise (S >= 2^28; S < 2^44 keeps m >= 2^22)

Since sum_i c_i^2 = D * S (eps aside), |c_i| <= sqrt(D * S), so c_i << p < sqrt(D) * 2^14
never overflows. G and B are gamma and beta in units of 2^-20 output LSBs (G_BITS = 32 - F
= 20), so that n_i * G_i has 32 fractional bits (one SMLAL, take the high word):

    G_i = round(gamma_i / output_scale * 2^20),  B_i = round(beta_i / output_scale * 2^20)
    eps = round(eps_real * D^2 / input_scale^2)

``firmware/kernels/tf_layernorm_s8.{c,h}`` implements exactly this.
"""

from __future__ import annotations

import math

import numpy as np

from tinyformer.engine.intmath import INT32_MAX, saturate

F_BITS = 12  # fractional bits of the normalised value
G_BITS = 32 - F_BITS  # fractional bits (in output LSBs) of gamma and beta
MAX_D = 1 << 15  # keeps sq in int32 and S below 2^44
G_LIMIT = 2**31 - 2**20  # |gamma|, |beta| bound: the C kernel adds 2^19 to beta


def rsqrt_multiplier(s: int) -> tuple[int, int]:
    """(m, p) with m * 2**(p - 32) ~= 2**F_BITS / sqrt(s): see the module docstring."""
    if s <= 0:
        return 0, 0
    if s.bit_length() > 62:
        raise ValueError(f"variance term {s} too large")
    e = (62 - s.bit_length()) // 2
    q = ((1 << 61) - 1) // math.isqrt(s << (2 * e))  # exact floor sqrt, as the C kernel's
    if e + F_BITS >= 29:
        return q, e + F_BITS - 29
    return q >> (29 - e - F_BITS), 0


def layernorm_params(
    gamma: np.ndarray,
    beta: np.ndarray,
    input_scale: float,
    output_scale: float,
    eps: float,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Float gamma/beta/eps -> the kernel's (gamma int32[D], beta int32[D], eps int)."""
    gamma = np.asarray(gamma, np.float64)
    d = gamma.shape[0]
    g = np.round(gamma / output_scale * 2.0**G_BITS)
    b = np.round(np.asarray(beta, np.float64) / output_scale * 2.0**G_BITS)
    if np.any(np.abs(g) > G_LIMIT) or np.any(np.abs(b) > G_LIMIT):
        raise ValueError("gamma or beta too large for the output scale (|v / scale| >= 2047)")
    eps_q = round(eps * d * d / input_scale**2)
    if not 0 <= eps_q <= INT32_MAX:
        raise ValueError(f"eps {eps} out of range for input scale {input_scale}")
    return g.astype(np.int32), b.astype(np.int32), int(eps_q)


def layernorm_affine(gamma: np.ndarray, beta: np.ndarray, output_zp: int) -> np.ndarray:
    """The C kernel's per-channel {gamma, lo, hi}, int32 [D][3]: hi:lo is the 64-bit
    (beta << F_BITS) + 2^31 + (output_zp << 32) that one SMLAL adds n * gamma to, so that
    its high word is the output before saturation (layernorm's last line)."""
    b = np.asarray(beta, np.int64) + (1 << (31 - F_BITS))
    lo = (b << F_BITS) & 0xFFFFFFFF
    hi = (b >> (32 - F_BITS)) + int(output_zp)
    g = np.asarray(gamma, np.int64)
    return np.stack([g, lo - (lo >> 31 << 32), hi], axis=1).astype(np.int32)


def layernorm(
    x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: int, output_zp: int
) -> np.ndarray:
    """x [T, D] int8 -> [T, D] int8; gamma, beta int32 [D], eps int (see layernorm_params)."""
    x = np.asarray(x, np.int64)
    t, d = x.shape
    if not 1 <= d <= MAX_D:
        raise ValueError(f"LayerNorm depth {d} out of range 1..{MAX_D}")
    total = x.sum(axis=1)
    s = d * (x * x).sum(axis=1) - total * total + int(eps)
    pairs = np.array([rsqrt_multiplier(int(v)) for v in s], np.int64).reshape(t, 2)
    mult, pre = pairs[:, :1], pairs[:, 1:]
    n = (((d * x - total[:, None]) << pre) * mult + (1 << 31)) >> 32
    acc = n * np.asarray(gamma, np.int64) + (np.asarray(beta, np.int64) << F_BITS) + (1 << 31)
    return saturate((acc >> 32) + int(output_zp)).astype(np.int8)
