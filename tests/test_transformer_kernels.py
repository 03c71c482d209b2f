"""Transformer kernels: C equals the numpy reference bit for bit, and the integer
LayerNorm / softmax / GELU stay within an LSB or two of their float definitions."""

import ctypes
import math

import numpy as np
import pytest
from host_kernels import load, ptr

from tinyformer.engine.intmath import quantize_multiplier
from tinyformer.engine.ops.gelu import gelu_table, lut
from tinyformer.engine.ops.layout import (
    patch_to_token,
    reshape,
    token_to_patch,
    transpose_s8,
)
from tinyformer.engine.ops.matmul import batch_matmul_av, batch_matmul_qk
from tinyformer.engine.ops.norm import F_BITS, layernorm, layernorm_params, rsqrt_multiplier
from tinyformer.engine.ops.softmax import softmax, softmax_exp_table


def i8(rng: np.random.Generator, shape: tuple[int, ...], lo: int = -128, hi: int = 127):
    return rng.integers(lo, hi + 1, shape, dtype=np.int8)


def quantize(real: np.ndarray, scale: float, zp: int) -> np.ndarray:
    return np.clip(np.round(real / scale) + zp, -128, 127).astype(np.int64)


def out_qparams(real: np.ndarray) -> tuple[float, int]:
    """Asymmetric int8 (scale, zp) covering real's range (and 0)."""
    lo, hi = min(float(real.min()), 0.0), max(float(real.max()), 0.0)
    scale = max(hi - lo, 1e-6) / 255.0
    return scale, int(np.clip(round(-128 - lo / scale), -128, 127))


# -- LayerNorm --------------------------------------------------------------------------------


def c_layernorm(x, gamma, beta, eps, output_zp, out=None):
    t, d = x.shape
    out = np.zeros_like(x) if out is None else out
    load().tf_layernorm_s8(
        ptr(x), ptr(gamma), ptr(beta), eps, output_zp, t, d, ptr(out)
    )  # fmt: skip
    return out


def random_ln(rng: np.random.Generator, t: int, d: int):
    zp = int(rng.integers(-60, 60))
    spread = float(rng.uniform(2, 60))
    x = np.clip(np.round(rng.normal(zp, spread, (t, d))), -128, 127).astype(np.int8)
    s_in = float(rng.uniform(0.005, 0.2))
    gamma = rng.uniform(0.3, 2.0, d) * rng.choice([-1, 1], d)
    beta = rng.normal(0, 0.5, d)
    return x, zp, s_in, gamma, beta


def float_layernorm(x, zp, s_in, gamma, beta, eps):
    real = s_in * (x.astype(np.float64) - zp)
    mu = real.mean(axis=1, keepdims=True)
    var = real.var(axis=1, keepdims=True)
    return (real - mu) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("seed", range(25))
def test_layernorm_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    t, d = int(rng.integers(1, 10)), int(rng.integers(1, 90))
    x, _, s_in, gamma, beta = random_ln(rng, t, d)
    s_out, out_zp = float(rng.uniform(0.01, 0.05)), int(rng.integers(-30, 30))
    eps = [0.0, 1e-5, 1e-2][seed % 3]
    g, b, e = layernorm_params(gamma, beta, s_in, s_out, eps)
    ref = layernorm(x, g, b, e, out_zp)
    np.testing.assert_array_equal(c_layernorm(x, g, b, e, out_zp), ref)
    inplace = x.copy()
    c_layernorm(inplace, g, b, e, out_zp, out=inplace)
    np.testing.assert_array_equal(inplace, ref)


def test_layernorm_edge_rows() -> None:
    # Constant rows (S = 0 without eps), two-level rows, extremes, a single outlier.
    d = 37
    rows = [
        np.full(d, 5),
        np.full(d, -128),
        np.tile([-128, 127], d)[:d],
        np.r_[np.zeros(d - 1), 127],
        np.r_[np.zeros(d - 1), 1],
        np.arange(d) - 18,
    ]
    x = np.array(rows, np.int8)
    g, b, e = layernorm_params(np.ones(d), np.full(d, 0.25), 0.05, 0.02, 0.0)
    ref = layernorm(x, g, b, e, 3)
    np.testing.assert_array_equal(c_layernorm(x, g, b, e, 3), ref)
    assert np.all(ref[0] == ref[0, 0])  # constant row -> beta only
    assert ref[0, 0] == 13 + 3  # 0.25 / 0.02 = 12.5 rounds half up


def test_rsqrt_multiplier_is_exact_floor_sqrt_based() -> None:
    rng = np.random.default_rng(0)
    values = [1, 2, 3, 4, 15, 16, 17, 2**28 - 1, 2**28, 2**40, 4**20 - 1]
    for s in values + rng.integers(1, 2**44, 300).tolist():
        m, p = rsqrt_multiplier(int(s))
        assert 2**22 <= m < 2**31 and 0 <= p <= 13
        assert abs(m * 2.0 ** (p - 32) * math.sqrt(s) / 2**F_BITS - 1) < 2**-21
    assert rsqrt_multiplier(0) == (0, 0)
    # Perfect squares: floor sqrt is exact, so the multiplier is 2^61 / sqrt(S) floored.
    m, p = rsqrt_multiplier(4**20)  # sqrt = 2^20, e = 10
    assert (m, p) == ((2**61 - 1) // 2**30 >> 7, 0)


@pytest.mark.parametrize("seed", range(6))
def test_layernorm_close_to_float(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    t, d = 24, int(rng.choice([16, 33, 64, 96, 192]))
    x, zp, s_in, gamma, beta = random_ln(rng, t, d)
    eps = 1e-5
    want_real = float_layernorm(x, zp, s_in, gamma, beta, eps)
    s_out, out_zp = out_qparams(want_real)
    g, b, e = layernorm_params(gamma, beta, s_in, s_out, eps)
    got = layernorm(x, g, b, e, out_zp).astype(np.int64)
    want = quantize(want_real, s_out, out_zp)
    assert np.abs(got - want).max() <= 1
    assert np.mean(got == want) > 0.97
    assert len(np.unique(got)) > 100  # the scale spreads outputs over the int8 range


# -- softmax ----------------------------------------------------------------------------------


def c_softmax(x, table, out=None):
    out = np.zeros_like(x) if out is None else out
    rows, n = x.shape
    load().tf_softmax_s8(ptr(x), ptr(table), rows, n, ptr(out))
    return out


@pytest.mark.parametrize("seed", range(25))
def test_softmax_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, n = int(rng.integers(1, 12)), int(rng.integers(1, 300))
    lo = int(rng.integers(-128, 100))
    x = i8(rng, (rows, n), lo, int(rng.integers(lo, 128)))
    table = softmax_exp_table(float(rng.uniform(0.01, 0.3)), q_bits=int(rng.integers(2, 21)))
    ref = softmax(x, table)
    np.testing.assert_array_equal(c_softmax(x, table), ref)
    inplace = x.copy()
    c_softmax(inplace, table, out=inplace)
    np.testing.assert_array_equal(inplace, ref)


@pytest.mark.parametrize("seed", range(6))
def test_softmax_close_to_float(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    s_in, zp = float(rng.uniform(0.02, 0.15)), int(rng.integers(-20, 20))
    x = i8(rng, (32, int(rng.choice([7, 16, 64, 257]))))
    real = s_in * (x.astype(np.float64) - zp)
    p = np.exp(real - real.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    want = quantize(p, 1 / 256, -128)
    got = softmax(x, softmax_exp_table(s_in)).astype(np.int64)
    assert np.abs(got - want).max() <= 1
    assert np.mean(got == want) > 0.98
    assert len(np.unique(got)) > 20


def test_softmax_table_is_exactly_specified() -> None:
    table = softmax_exp_table(0.125, q_bits=20)
    assert table[0] == 2**20 and np.all(np.diff(table) <= 0)
    for k in (1, 7, 100):
        assert table[k] == math.floor(2**20 * math.exp(-0.125 * k) + 0.5)
    np.testing.assert_array_equal(table, softmax_exp_table(0.125, q_bits=20))
    # A peaked row: the max gets 255/256 (code 127 after clamping 128), others about 0.
    out = softmax(np.array([[127, -128, -128]], np.int8), softmax_exp_table(0.1))
    assert out[0, 0] == 127 and np.all(out[0, 1:] == -128)


# -- GELU / LUT -------------------------------------------------------------------------------


def float_gelu(x: np.ndarray) -> np.ndarray:
    return np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x.ravel()])


@pytest.mark.parametrize("seed", range(12))
def test_gelu_table_close_to_float(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    s_in, zp = float(rng.uniform(0.01, 0.1)), int(rng.integers(-128, 60))
    q = np.arange(-128, 128)
    real = float_gelu(s_in * (q - zp))
    s_out, out_zp = out_qparams(real)
    table = gelu_table(s_in, zp, s_out, out_zp).astype(np.int64)
    err = np.abs(table - quantize(real, s_out, out_zp))
    # i-GELU's polynomial erf is off by at most 0.0182 in real units, plus one rounding.
    assert err.max() <= 0.0182 / s_out + 1
    if s_out >= 0.02:
        assert err.max() <= 2
    assert len(np.unique(table)) > 60  # not a degenerate, saturated table


def test_gelu_table_shape_and_zero() -> None:
    table = gelu_table(0.05, -10, 0.03, -100)
    assert table.shape == (256,) and table.dtype == np.int8
    assert table[-10 + 128] == -100  # gelu(0) = 0 -> the output zero point


@pytest.mark.parametrize("seed", range(6))
def test_lut_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = i8(rng, (int(rng.integers(1, 500)),))
    table = i8(rng, (256,))
    out = np.zeros_like(x)
    load().tf_lut_s8(ptr(x), ptr(table), x.size, ptr(out))
    np.testing.assert_array_equal(out, lut(x, table))
    np.testing.assert_array_equal(
        lut(np.array([-128, 0, 127], np.int8), table), table[[0, 128, 255]]
    )
    load().tf_lut_s8(ptr(x), ptr(table), x.size, ptr(x))  # in place
    np.testing.assert_array_equal(x, out)


# -- batch matmul -----------------------------------------------------------------------------


def bmm_case(rng: np.random.Generator):
    heads, d = int(rng.integers(1, 5)), int(rng.integers(1, 40))
    t_q, t_k = int(rng.integers(1, 20)), int(rng.integers(1, 40))
    zps = [int(v) for v in rng.integers(-128, 128, 2)]
    return heads, d, t_q, t_k, zps


def requant_for(k: int, rng: np.random.Generator, regime: int = 2) -> tuple[int, int, int]:
    """Typical attention scales; regime 0: multiplier >= 0.25 (shift >= -1), regime 1:
    below 2^-23 (shift < -22): the kernel's general requantization path."""
    real = float(rng.uniform(0.3, 3.0)) / (k**0.5 * 128)
    if regime == 0:
        real = float(rng.uniform(0.26, 1.9))
    elif regime == 1:
        real = float(rng.uniform(0.5, 1.0)) * 2.0**-24
    mult, shift = quantize_multiplier(real)
    return mult, shift, int(rng.integers(-40, 40))


def operand(rng: np.random.Generator, shape: tuple[int, ...], zp: int, regime: int):
    """Random int8; near the zero point for large multipliers so outputs do not saturate."""
    if regime == 0:
        return i8(rng, shape, max(zp - 2, -128), min(zp + 2, 127))
    return i8(rng, shape)


def bmm_scratch(k: int, cols: int) -> np.ndarray:
    """Exactly tf_bmm_scratch_bytes(k, cols) (8-byte aligned): 16 * groups * (1 + cols/2)."""
    return np.zeros(2 * ((k + 3) // 4) * (1 + (cols + 1) // 2), np.uint64)


@pytest.mark.parametrize("seed", range(30))
def test_batch_matmul_qk_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    regime = seed % 5
    heads, d, t_q, t_k, (q_zp, k_zp) = bmm_case(rng)
    if regime == 0:
        k_zp = q_zp  # one fused buffer, one zero point range for the narrow operands
    hd = heads * d
    # q and k as views into one fused QKV projection [T][3*H*d] (+ padding): strided rows.
    stride = 3 * hd + int(rng.integers(0, 3))
    qkv = operand(rng, (max(t_q, t_k), stride), q_zp, regime)
    q, k = qkv[:t_q, :hd], qkv[:t_k, hd : 2 * hd]
    mult, shift, out_zp = requant_for(d, rng, regime)
    ref = batch_matmul_qk(q, k, q_zp, k_zp, heads, mult, shift, out_zp)
    assert ref.shape == (heads, t_q, t_k)
    scores = np.zeros((heads, t_q, t_k), np.int8)
    scratch = bmm_scratch(d, t_k)
    load().tf_batch_matmul_qk_s8(
        ptr(qkv), stride, q_zp, ctypes.c_void_p(qkv.ctypes.data + hd), stride, k_zp, heads,
        t_q, t_k, d, mult, shift, out_zp, ptr(scores), ptr(scratch),
    )  # fmt: skip
    np.testing.assert_array_equal(scores, ref)


@pytest.mark.parametrize("seed", range(30))
def test_batch_matmul_av_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    regime = seed % 5
    heads, d, t_q, t_k, (a_zp, v_zp) = bmm_case(rng)
    hd = heads * d
    attn = operand(rng, (heads, t_q, t_k), a_zp, regime)
    v_stride = hd + int(rng.integers(0, 5))
    v_buf = operand(rng, (t_k, v_stride), v_zp, regime)
    mult, shift, out_zp = requant_for(t_k, rng, regime)
    ref = batch_matmul_av(attn, v_buf[:, :hd], a_zp, v_zp, mult, shift, out_zp)
    assert ref.shape == (t_q, hd)
    out_stride = hd + int(rng.integers(0, 3))
    out = np.full((t_q, out_stride), 77, np.int8)
    scratch = bmm_scratch(t_k, d)
    load().tf_batch_matmul_av_s8(
        ptr(attn), a_zp, ptr(v_buf), v_stride, v_zp, heads, t_q, t_k, d, mult, shift, out_zp,
        ptr(out), out_stride, ptr(scratch),
    )  # fmt: skip
    np.testing.assert_array_equal(out[:, :hd], ref)
    assert np.all(out[:, hd:] == 77)  # padding columns untouched


@pytest.mark.parametrize("regime", [0, 2])
def test_batch_matmul_not_saturated(regime: int) -> None:
    # Guards the tests above: their random requantization must leave outputs spread out.
    rng = np.random.default_rng(5)
    q, k = operand(rng, (16, 64), 3, regime), operand(rng, (16, 64), 3, regime)
    mult, shift, zp = requant_for(32, rng, regime)
    assert len(np.unique(batch_matmul_qk(q, k, 3, 3, 2, mult, shift, zp))) > 8 + 32 * regime
    attn = operand(rng, (2, 16, 16), -128, regime)
    mult, shift, zp = requant_for(16, rng, regime)
    assert len(np.unique(batch_matmul_av(attn, q, -128, 3, mult, shift, zp))) > 8 + 32 * regime


# -- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_transpose_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(v) for v in rng.integers(1, 6, 4))
    perm = tuple(int(v) for v in rng.permutation(4))
    inner = int(rng.integers(1, 9))
    x = i8(rng, (*shape, inner))
    out = np.zeros(x.size, np.int8)
    c_shape, c_perm = np.array(shape, np.int32), np.array(perm, np.int32)
    load().tf_transpose_s8(ptr(x), ptr(c_shape), ptr(c_perm), inner, ptr(out))
    np.testing.assert_array_equal(out, transpose_s8(x, shape, perm, inner))


@pytest.mark.parametrize(("h", "w", "c", "p"), [(8, 8, 16, 2), (6, 4, 3, 2), (9, 6, 5, 3)])
def test_patch_to_token_layout(h: int, w: int, c: int, p: int) -> None:
    x = i8(np.random.default_rng(h * w), (h, w, c))
    tokens = patch_to_token(x, p)
    nw = w // p
    assert tokens.shape == (p * p, (h // p) * nw, c)
    for py, px, by, bx in [(0, 0, 0, 0), (p - 1, 0, 1, nw - 1), (0, p - 1, h // p - 1, 0)]:
        np.testing.assert_array_equal(
            tokens[py * p + px, by * nw + bx], x[by * p + py, bx * p + px]
        )
    np.testing.assert_array_equal(token_to_patch(tokens, h, w, p), x)
    # The C kernel through the generic transpose with the documented shape/perm.
    out, back = np.zeros(x.size, np.int8), np.zeros(x.size, np.int8)
    shape, perm = np.array([h // p, p, w // p, p], np.int32), np.array([1, 3, 0, 2], np.int32)
    load().tf_transpose_s8(ptr(x), ptr(shape), ptr(perm), c, ptr(out))
    np.testing.assert_array_equal(out, tokens.ravel())
    shape, perm = np.array([p, p, h // p, w // p], np.int32), np.array([2, 0, 3, 1], np.int32)
    load().tf_transpose_s8(ptr(out), ptr(shape), ptr(perm), c, ptr(back))
    np.testing.assert_array_equal(back.reshape(h, w, c), x)
    assert np.shares_memory(reshape(tokens, (-1, c)), tokens)
    with pytest.raises(ValueError):
        patch_to_token(x, p + 3 if h % (p + 3) else p + 4)
