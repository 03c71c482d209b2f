"""Transformer kernels: C equals the numpy reference bit for bit, and the integer
LayerNorm / softmax / GELU stay within an LSB or two of their float definitions."""

import ctypes
import math

import numpy as np
import pytest
from host_kernels import load, ptr
from qemu_layers import run_on_qemu

from tinyformer.engine.intmath import quantize_multiplier
from tinyformer.engine.ops.gelu import gelu_table, lut
from tinyformer.engine.ops.layout import (
    patch_to_token,
    reshape,
    token_to_patch,
    transpose_s8,
)
from tinyformer.engine.ops.matmul import batch_matmul_av, batch_matmul_qk, bmm_scratch_bytes
from tinyformer.engine.ops.norm import (
    F_BITS,
    layernorm,
    layernorm_affine,
    layernorm_params,
    rsqrt_multiplier,
)
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
    affine = layernorm_affine(gamma, beta, output_zp)
    load().tf_layernorm_s8(ptr(x), ptr(affine), eps, t, d, ptr(out))
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


# -- LayerNorm / softmax edge cases, host and Cortex-M7 ----------------------------------------

G_MAX = 2**31 - 2**20  # |gamma|, |beta| bound of layernorm_params


def ln_case_list() -> list[tuple]:
    """(x [t, d] int8, gamma, beta, eps, output_zp): odd and short rows, long rows,
    variance 0, alternating extremes, gamma/beta at their bounds, eps up to INT32_MAX."""
    rng = np.random.default_rng(7)
    cases = []
    for d in [*range(1, 10), 13, 31, 64, 65, 384]:
        x, _, s_in, gamma, beta = random_ln(rng, 3, d)
        g, b, e = layernorm_params(gamma, beta, s_in, 0.02, [0.0, 1e-5][d % 2])
        cases.append((x, g, b, e, int(rng.integers(-128, 128))))
    d = 24
    extremes = np.array(
        [np.full(d, 127), np.full(d, -128), np.tile([-128, 127], d // 2),
         np.r_[np.full(d - 1, -128), 127], np.r_[np.zeros(d - 1), 1], np.arange(d) * 11 - 128],
        np.int8,
    )  # fmt: skip
    for g0, b0 in [(G_MAX, G_MAX), (-G_MAX, -G_MAX), (G_MAX, -G_MAX), (1, 0), (0, G_MAX)]:
        g = np.full(d, g0, np.int32)
        g[::3] = -g0
        b = np.full(d, b0, np.int32)
        b[1::4] = rng.integers(-G_MAX, G_MAX, len(b[1::4]))
        for eps, zp in [(0, -128), (2**31 - 1, 127), (1000, 0)]:
            cases.append((extremes, g, b, eps, zp))
    # the digits model's shape
    x, _, s_in, gamma, beta = random_ln(rng, 16, 64)
    g, b, e = layernorm_params(gamma, beta, s_in, 0.03, 1e-5)
    cases.append((x, g, b, e, 5))
    return cases


def sm_case_list() -> list[tuple]:
    """(x [rows, n] int8, exp_table): lengths 1..9 and odd, long rows, one dominant value,
    all equal, extremes, small and large table Q (both normalisation paths)."""
    rng = np.random.default_rng(8)
    cases = []
    for n in [*range(1, 10), 13, 16, 31, 384]:
        for q in (2, 9, 20):
            x = i8(rng, (3, n))
            x[1] = i8(rng, (n,), 100, 127)
            x[2, :] = -128
            x[2, n // 2] = 127
            cases.append((x, softmax_exp_table(float(rng.uniform(0.01, 0.3)), q_bits=q)))
    x = np.array([np.full(20, 127), np.full(20, -128), np.tile([-128, 127], 10)], np.int8)
    for scale in (0.001, 0.05, 1.0):
        cases.append((x, softmax_exp_table(scale, q_bits=20)))
    cases.append((i8(rng, (2, 1)), softmax_exp_table(0.1, q_bits=30)))  # 2^30 * n < 2^31
    cases.append((i8(rng, (2, 2047), 120, 127), softmax_exp_table(0.01, q_bits=20)))
    cases.append((i8(rng, (64, 16)), softmax_exp_table(0.08, q_bits=20)))  # digits: 4x16x16
    return cases


def test_layernorm_edge_cases_unaligned_and_in_place() -> None:
    for i, (x, g, b, e, zp) in enumerate(ln_case_list()):
        ref = layernorm(x, g, b, e, zp)
        buf = np.zeros(x.size + 8, np.int8)
        xin = buf[i % 4 : i % 4 + x.size].reshape(x.shape)
        xin[...] = x
        np.testing.assert_array_equal(c_layernorm(x, g, b, e, zp), ref, err_msg=f"case {i}")
        c_layernorm(xin, g, b, e, zp, out=xin)
        np.testing.assert_array_equal(xin, ref, err_msg=f"case {i} in place")


def test_softmax_edge_cases_unaligned_and_in_place() -> None:
    for i, (x, table) in enumerate(sm_case_list()):
        ref = softmax(x, table)
        buf = np.zeros(x.size + 8, np.int8)
        xin = buf[i % 4 : i % 4 + x.size].reshape(x.shape)
        xin[...] = x
        np.testing.assert_array_equal(c_softmax(x, table), ref, err_msg=f"case {i}")
        c_softmax(xin, table, out=xin)
        np.testing.assert_array_equal(xin, ref, err_msg=f"case {i} in place")


def run_ln_softmax_on_qemu(tmp_path):
    """Every ln_case_list / sm_case_list case as one layer of a hand-made firmware, inputs
    at every byte offset mod 4, every third case in place; (outputs, layer counts)."""
    from tinyformer.engine.cmodel import CArray, CModel

    cases = [("ln", c) for c in ln_case_list()] + [("sm", c) for c in sm_case_list()]
    places, off = [], 0
    for i, (_, c) in enumerate(cases):
        n = c[0].size
        xo = off + i % 4
        oo = xo if i % 3 == 2 else xo + n + 4 + (i // 4) % 4
        places.append((xo, oo))
        off = -(-(max(xo, oo) + n + 8) // 16) * 16
    data = np.zeros(off, np.int8)
    heads = ["tf_layernorm_s8.h", "tf_softmax_s8.h"]
    cm = CModel(name="ln_sm_edges", arena_bytes=off, input_offset=0, input_bytes=off,
                output_offset=0, output_bytes=off, includes=heads)  # fmt: skip
    for i, ((kind, c), (xo, oo)) in enumerate(zip(cases, places, strict=True)):
        x = c[0]
        data[xo : xo + x.size] = x.ravel()
        if kind == "ln":
            _, g, b, e, zp = c
            cm.constants.append(CArray(f"a{i}", layernorm_affine(g, b, zp).ravel()))
            code = (f"    tf_layernorm_s8(arena + {xo}, a{i}, {e}, {x.shape[0]}, "
                    f"{x.shape[1]}, arena + {oo});")  # fmt: skip
        else:
            cm.constants.append(CArray(f"t{i}", c[1].astype(np.int32)))
            code = (
                f"    tf_softmax_s8(arena + {xo}, t{i}, {x.shape[0]}, {x.shape[1]}, arena + {oo});"
            )
        cm.layers.append((f"{kind} {x.shape}", code))
    m = run_on_qemu(cm, data.tobytes(), tmp_path)
    got = np.frombuffer(m.output, np.int8)
    outs = [
        got[oo : oo + c[0].size].reshape(c[0].shape)
        for (_, c), (_, oo) in zip(cases, places, strict=True)
    ]
    return cases, outs, m.layer_counts


def test_layernorm_softmax_arm_match_reference_on_qemu(tmp_path) -> None:
    """The Cortex-M7 code paths (host tests run the portable C) against the reference."""
    cases, outs, counts = run_ln_softmax_on_qemu(tmp_path)
    for i, ((kind, c), got) in enumerate(zip(cases, outs, strict=True)):
        ref = layernorm(*c) if kind == "ln" else softmax(*c)
        np.testing.assert_array_equal(got, ref, err_msg=f"case {i} ({kind} {c[0].shape})")
    n_ln = len(ln_case_list())
    # the digits shapes (16x64 LayerNorm, 4x16x16 softmax): about 16.5 and 18.5
    # instructions an element (27 and 24.6 before the SIMD statistics and FPU setup)
    ln_digits, sm_digits = counts[n_ln - 1], counts[-1]
    assert ln_digits < 18 * 1024, ln_digits
    assert sm_digits < 20 * 1024, sm_digits


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
    """Exactly tf_bmm_scratch_bytes(k, cols) (8-byte aligned), so overruns show under ASan."""
    return np.zeros(bmm_scratch_bytes(k, cols) // 8, np.uint64)


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


# Requantization at the limits of the kernel's SMMLA form (shift -24..-2) and just outside.
BMM_LIMITS = [(2**30, -2), (2**31 - 1, -24), (2**31 - 1, -1), (2**30, -25), (1518500250, -8)]


def bmm_edge_cases(n: int, seed: int = 77) -> list[dict]:
    """Small shapes (tokens 1..17, head dims not a multiple of 4, up to 8 heads), extreme zero
    points, operands and requantization limits; q and k are views into a fused QKV buffer."""
    rng = np.random.default_rng(seed)
    cases = []
    for i in range(n):
        heads, d = int(rng.integers(1, 9)), int(rng.integers(1, 27))
        t_q, t_k = int(rng.integers(1, 18)), int(rng.integers(1, 18))
        mult, shift = BMM_LIMITS[i % len(BMM_LIMITS)]
        zps = [int(v) for v in rng.choice([-128, 127, 0, int(rng.integers(-128, 128))], 3)]
        out_zp = int(rng.choice([-128, 127, int(rng.integers(-30, 30))]))
        hd = heads * d
        stride = 3 * hd + int(rng.integers(0, 3))
        lo, hi = (-128, 127) if i % 3 else (min(zps[0], zps[1]), max(zps[0], zps[1]))
        if i % 7 == 6:  # every product at its largest magnitude
            lo = hi = 127 if zps[0] < 0 else -128
        qkv = i8(rng, (max(t_q, t_k), stride), lo, hi)
        attn = (
            i8(rng, (heads, t_q, t_k), -128, 127)
            if i % 7 != 6
            else np.full((heads, t_q, t_k), 127 if zps[2] < 0 else -128, np.int8)
        )
        cases.append(dict(heads=heads, d=d, t_q=t_q, t_k=t_k, zps=zps, mult=mult, shift=shift,
                          out_zp=out_zp, stride=stride, qkv=qkv, attn=attn))  # fmt: skip
    return cases


def bmm_edge_refs(c: dict) -> tuple[np.ndarray, np.ndarray]:
    hd, (q_zp, k_zp, a_zp) = c["heads"] * c["d"], c["zps"]
    rq = (c["mult"], c["shift"], c["out_zp"])
    qkv, t_q, t_k = c["qkv"], c["t_q"], c["t_k"]
    scores = batch_matmul_qk(qkv[:t_q, :hd], qkv[:t_k, hd : 2 * hd], q_zp, k_zp, c["heads"], *rq)
    out = batch_matmul_av(c["attn"], qkv[:t_k, 2 * hd : 3 * hd], a_zp, k_zp, *rq)
    return scores, out


def test_batch_matmul_edge_cases() -> None:
    for i, c in enumerate(bmm_edge_cases(120)):
        heads, d, t_q, t_k, stride = c["heads"], c["d"], c["t_q"], c["t_k"], c["stride"]
        hd, (q_zp, k_zp, a_zp), qkv = heads * d, c["zps"], c["qkv"]
        rq = (c["mult"], c["shift"], c["out_zp"])
        ref_s, ref_o = bmm_edge_refs(c)
        scores = np.zeros(heads * t_q * t_k + 16, np.int8)
        scratch_qk, scratch_av = bmm_scratch(d, t_k), bmm_scratch(t_k, d)
        load().tf_batch_matmul_qk_s8(
            ptr(qkv), stride, q_zp, ctypes.c_void_p(qkv.ctypes.data + hd), stride, k_zp, heads,
            t_q, t_k, d, *rq, ptr(scores), ptr(scratch_qk),
        )  # fmt: skip
        np.testing.assert_array_equal(scores[: ref_s.size], ref_s.ravel(), err_msg=f"qk {i}")
        assert np.all(scores[ref_s.size :] == 0), f"qk {i}: overrun"
        out = np.full((t_q, hd + 1), 77, np.int8)
        load().tf_batch_matmul_av_s8(
            ptr(c["attn"]), a_zp, ctypes.c_void_p(qkv.ctypes.data + 2 * hd), stride, k_zp,
            heads, t_q, t_k, d, *rq, ptr(out), hd + 1, ptr(scratch_av),
        )  # fmt: skip
        np.testing.assert_array_equal(out[:, :hd], ref_o, err_msg=f"av {i}")
        assert np.all(out[:, hd:] == 77), f"av {i}: overrun"


def test_batch_matmul_arm_matches_reference_on_qemu(tmp_path) -> None:
    """The Cortex-M7 assembly (host tests run the portable C) on the edge cases, with
    unaligned operand and output buffers, against the reference."""
    from tinyformer.engine.cmodel import CModel

    cases = bmm_edge_cases(40, seed=78)
    chunks, layers, checks, off = [], [], [], 0

    def place(n: int, mis: int = 0) -> int:
        nonlocal off
        at = off + mis
        off = -(-(at + n + 4) // 8) * 8
        return at

    for i, c in enumerate(cases):
        heads, d, t_q, t_k, stride = c["heads"], c["d"], c["t_q"], c["t_k"], c["stride"]
        hd, (q_zp, k_zp, a_zp) = heads * d, c["zps"]
        rq = f"{c['mult']}, {c['shift']}, {c['out_zp']}"
        o_qkv, o_attn = place(c["qkv"].size, i % 4), place(c["attn"].size, (i // 4) % 4)
        o_s, o_o = place(heads * t_q * t_k, i % 3), place(t_q * hd, (i + 1) % 4)
        o_scr = place(max(bmm_scratch_bytes(d, t_k), bmm_scratch_bytes(t_k, d)))
        chunks += [(o_qkv, c["qkv"]), (o_attn, c["attn"])]
        layers.append((f"qk {i}", f"    tf_batch_matmul_qk_s8(arena + {o_qkv}, {stride}, {q_zp}, "
                       f"arena + {o_qkv + hd}, {stride}, {k_zp}, {heads}, {t_q}, {t_k}, {d}, "
                       f"{rq}, arena + {o_s}, arena + {o_scr});"))  # fmt: skip
        layers.append((f"av {i}", f"    tf_batch_matmul_av_s8(arena + {o_attn}, {a_zp}, "
                       f"arena + {o_qkv + 2 * hd}, {stride}, {k_zp}, {heads}, {t_q}, {t_k}, "
                       f"{d}, {rq}, arena + {o_o}, {hd}, arena + {o_scr});"))  # fmt: skip
        checks.append((o_s, o_o, *bmm_edge_refs(c)))
    data = np.zeros(off, np.int8)
    for at, arr in chunks:
        data[at : at + arr.size] = arr.ravel()
    cm = CModel(name="bmm_edges", arena_bytes=off, input_offset=0, input_bytes=off,
                output_offset=0, output_bytes=off, includes=["tf_batch_matmul_s8.h"])  # fmt: skip
    cm.layers.extend(layers)
    got = np.frombuffer(run_on_qemu(cm, data.tobytes(), tmp_path).output, np.int8)
    for i, (o_s, o_o, ref_s, ref_o) in enumerate(checks):
        np.testing.assert_array_equal(got[o_s : o_s + ref_s.size], ref_s.ravel(), f"qk {i}")
        np.testing.assert_array_equal(got[o_o : o_o + ref_o.size], ref_o.ravel(), f"av {i}")


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
