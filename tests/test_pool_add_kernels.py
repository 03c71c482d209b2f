"""Pooling and residual add: C equals the numpy reference bit for bit; the reference rounds
as documented and stays within an LSB of the real-valued result."""

import numpy as np
import pytest
from host_kernels import load, ptr

from tinyformer.engine.ops.conv import output_size
from tinyformer.engine.ops.elementwise import activation_range, add, add_params
from tinyformer.engine.ops.pool import avgpool, global_avgpool, round_div


def guarded_out(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Output buffer followed by 64 canary bytes, to catch writes past its end."""
    n = int(np.prod(shape))
    buf = np.full(n + 64, 0x5A, np.int8)
    return buf[:n].reshape(shape), buf[n:]


def half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


# -- average pooling --------------------------------------------------------------------------


def random_pool(rng: np.random.Generator) -> dict:
    k_h, k_w = (int(v) for v in rng.integers(1, 6, 2))
    pad = tuple(int(p) for p in rng.integers(0, [k_h, k_w, k_h, k_w]))
    return {
        "x": rng.integers(-128, 128, (*rng.integers(1, 12, 2), rng.integers(1, 20)), np.int8),
        "k_h": k_h,
        "k_w": k_w,
        "stride": int(rng.integers(1, 4)),
        "padding": pad,
        "act_min": int(rng.integers(-128, -90)),
        "act_max": int(rng.integers(90, 128)),
    }


def fits(p: dict) -> bool:
    (h, w, _), (top, left, bottom, right) = p["x"].shape, p["padding"]
    return h + top + bottom >= p["k_h"] and w + left + right >= p["k_w"]


def c_avgpool(p: dict) -> np.ndarray:
    h, w, c = p["x"].shape
    top, left, bottom, right = p["padding"]
    ho = output_size(h, p["k_h"], p["stride"], top, bottom)
    wo = output_size(w, p["k_w"], p["stride"], left, right)
    out, guard = guarded_out((ho, wo, c))
    load().tf_avgpool_s8(
        ptr(p["x"]), h, w, c, p["k_h"], p["k_w"], p["stride"], *p["padding"], p["act_min"],
        p["act_max"], ptr(out),
    )  # fmt: skip
    assert np.all(guard == 0x5A), "output overrun"
    return out


@pytest.mark.parametrize("seed", range(60))
def test_avgpool_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = random_pool(rng)
    while not fits(p):
        p = random_pool(rng)
    np.testing.assert_array_equal(c_avgpool(p), avgpool(**p))


@pytest.mark.parametrize(
    "shape",
    [
        # (h, w, c, k_h, k_w, stride, padding)
        (7, 7, 5, 3, 3, 2, (1, 1, 1, 1)),  # stride 2, odd size, SAME padding
        (8, 6, 8, 2, 2, 2, (0, 0, 0, 0)),  # the classic 2x2/2
        (5, 9, 3, 3, 5, 1, (0, 2, 2, 1)),  # non-square, asymmetric padding
        (4, 4, 7, 4, 4, 1, (0, 0, 0, 0)),  # one window = global pooling
        (1, 1, 6, 3, 3, 1, (1, 1, 1, 1)),  # one pixel, eight padded taps: count 1
    ],
)
def test_avgpool_edge_shapes(shape) -> None:
    h, w, c, k_h, k_w, stride, pad = shape
    x = np.random.default_rng(h * 31 + w).integers(-128, 128, (h, w, c), np.int8)
    p = {"x": x, "k_h": k_h, "k_w": k_w, "stride": stride, "padding": pad,
         "act_min": -128, "act_max": 127}  # fmt: skip
    np.testing.assert_array_equal(c_avgpool(p), avgpool(**p))


def test_avgpool_is_the_mean_of_valid_taps() -> None:
    # Definition: mean over the in-bounds taps only, rounded half away from zero.
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (6, 7, 4), np.int8)
    out = avgpool(x, 3, 3, 2, (1, 1, 1, 1))
    for oy, ox in np.ndindex(*out.shape[:2]):
        y0, x0 = oy * 2 - 1, ox * 2 - 1
        win = x[max(y0, 0) : y0 + 3, max(x0, 0) : x0 + 3].astype(np.float64)
        expect = half_away(win.reshape(-1, 4).mean(axis=0))
        np.testing.assert_array_equal(out[oy, ox], expect)


def test_round_div_ties_away_from_zero() -> None:
    acc = np.array([3, -3, 5, -5, 1, -1, 0, 4, -4, 7, -7])
    np.testing.assert_array_equal(round_div(acc, 2), [2, -2, 3, -3, 1, -1, 0, 2, -2, 4, -4])
    np.testing.assert_array_equal(round_div(acc, 3), [1, -1, 2, -2, 0, 0, 0, 1, -1, 2, -2])


@pytest.mark.parametrize("seed", range(20))
def test_global_avgpool_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    rows, c = int(rng.integers(1, 300)), int(rng.integers(1, 40))
    x = rng.integers(-128, 128, (rows, c), np.int8)
    lo, hi = int(rng.integers(-128, -20)), int(rng.integers(20, 128))
    out, guard = guarded_out((c,))
    load().tf_global_avgpool_s8(ptr(x), rows, c, lo, hi, ptr(out))
    assert np.all(guard == 0x5A), "output overrun"
    ref = global_avgpool(x, lo, hi)
    np.testing.assert_array_equal(out, ref)
    mean = half_away(x.astype(np.float64).mean(axis=0))
    np.testing.assert_array_equal(ref, np.clip(mean, lo, hi))


def test_global_avgpool_of_an_image_and_ties() -> None:
    x = np.zeros((2, 2, 3), np.int8)
    x[..., 0] = [[1, 0], [0, 1]]  # mean 0.5 -> 1
    x[..., 1] = [[-1, 0], [0, -1]]  # mean -0.5 -> -1
    x[..., 2] = [[7, 7], [7, 6]]  # mean 6.75 -> 7
    np.testing.assert_array_equal(global_avgpool(x), [1, -1, 7])


# -- residual add -----------------------------------------------------------------------------


def random_add(rng: np.random.Generator, n: int) -> tuple[dict, tuple[float, ...]]:
    s1, s2 = (float(v) for v in 10.0 ** rng.uniform(-3, -1, 2))
    s_out = max(s1, s2) * float(rng.uniform(0.8, 2.5))
    zp1, zp2, zp_out = (int(v) for v in rng.integers(-128, 128, 3))
    params = add_params(s1, zp1, s2, zp2, s_out, zp_out)
    p = {
        "x1": rng.integers(-128, 128, n, np.int8),
        "x2": rng.integers(-128, 128, n, np.int8),
        **params,
        "act_min": int(rng.integers(-128, -100)),
        "act_max": int(rng.integers(100, 128)),
    }
    return p, (s1, s2, s_out)


def c_add(p: dict, out: np.ndarray | None = None) -> np.ndarray:
    n = p["x1"].size
    out = np.zeros(n, np.int8) if out is None else out
    load().tf_add_s8(
        ptr(p["x1"]), ptr(p["x2"]), n, p["input1_zp"], p["input1_multiplier"],
        p["input1_shift"], p["input2_zp"], p["input2_multiplier"], p["input2_shift"],
        p["output_zp"], p["output_multiplier"], p["output_shift"], p["act_min"], p["act_max"],
        p["left_shift"], ptr(out),
    )  # fmt: skip
    return out


@pytest.mark.parametrize("seed", range(40))
def test_add_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p, _ = random_add(rng, int(rng.integers(1, 500)))
    np.testing.assert_array_equal(c_add(p), add(**p))


def test_add_in_place() -> None:
    p, _ = random_add(np.random.default_rng(9), 333)
    expect = add(**p)
    x1 = p["x1"]
    c_add(p, out=x1)  # output aliases input1, as the memory planner may arrange
    np.testing.assert_array_equal(x1, expect)


@pytest.mark.parametrize("seed", range(10))
def test_add_is_within_one_lsb_of_real(seed: int) -> None:
    rng = np.random.default_rng(50 + seed)
    p, (s1, s2, s_out) = random_add(rng, 2000)
    x1, x2 = p["x1"].astype(np.float64), p["x2"].astype(np.float64)
    real = s1 * (x1 - p["input1_zp"]) + s2 * (x2 - p["input2_zp"])
    ideal = np.clip(np.round(real / s_out) + p["output_zp"], p["act_min"], p["act_max"])
    err = np.abs(add(**p).astype(np.int64) - ideal)
    assert err.max() <= 1
    assert np.mean(err == 0) > 0.95


def test_add_exhaustive_pairs() -> None:
    # Every pair of int8 values once, with equal and very different scales.
    grid1, grid2 = np.meshgrid(np.arange(-128, 128), np.arange(-128, 128))
    for scales in [(0.02, 0.02, 0.04), (0.1, 0.001, 0.09), (0.003, 0.05, 0.2)]:
        p = {"x1": grid1.astype(np.int8).ravel(), "x2": grid2.astype(np.int8).ravel(),
             **add_params(scales[0], 5, scales[1], -17, scales[2], -3),
             "act_min": -128, "act_max": 127}  # fmt: skip
        np.testing.assert_array_equal(c_add(p), add(**p))


def test_add_general_shifts() -> None:
    # Parameters add_params never makes (an input shift > 0): the kernel's general path.
    rng = np.random.default_rng(11)
    p = {"x1": rng.integers(-128, 128, 999, np.int8), "x2": rng.integers(-128, 128, 999, np.int8),
         "input1_zp": 3, "input1_multiplier": 1 << 30, "input1_shift": 1,
         "input2_zp": -4, "input2_multiplier": 1_500_000_000, "input2_shift": -3,
         "output_zp": 5, "output_multiplier": 1_200_000_000, "output_shift": -8,
         "act_min": -128, "act_max": 127, "left_shift": 8}  # fmt: skip
    ref = add(**p)
    assert len(np.unique(ref)) > 100
    np.testing.assert_array_equal(c_add(p), ref)


def test_add_output_not_saturated_everywhere() -> None:
    p, _ = random_add(np.random.default_rng(4), 1000)
    out = add(**p)
    assert len(np.unique(out)) > 100


def test_activation_range() -> None:
    assert activation_range("none", 0.1, 3) == (-128, 127)
    assert activation_range("relu", 0.1, -20) == (-20, 127)
    # zero point + 6 / scale, clipped to int8: -128 + 120, -3 + 125, 0 + 600
    assert activation_range("relu6", 0.05, -128) == (-128, -8)
    assert activation_range("relu6", 0.048, -3) == (-3, 122)
    assert activation_range("relu6", 0.01, 0) == (0, 127)
    # ties (6 / 0.16 == 37.5 and 6 / 2.4 == 2.5 in doubles) round away from zero
    assert activation_range("relu6", 0.16, 0) == (0, 38)
    assert activation_range("relu6", 2.4, -7) == (-7, -4)
    with pytest.raises(ValueError):
        activation_range("gelu", 0.1, 0)
