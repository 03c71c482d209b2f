"""Pooling and residual add: C equals the numpy reference bit for bit; the reference rounds
as documented and stays within an LSB of the real-valued result."""

import numpy as np
import pytest
from host_kernels import load, ptr
from qemu_layers import run_on_qemu

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


def extreme_add(rng: np.random.Generator, n: int) -> dict:
    """Parameters at and past the ends of what add_params makes: multipliers from 0 to near
    2^31, shifts around the kernel's fast-form limits, zero points up to +-128 (and beyond),
    output shifts that saturate or barely scale, any activation range (even lo > hi)."""
    left_shift = int(rng.choice([20, 20, 22, 0, 8, int(rng.integers(0, 23))]))

    def mult() -> int:
        return int(rng.choice([1 << 30, (1 << 31) - 1, int(rng.integers(1 << 30, 1 << 31)),
                               int(rng.integers(0, 1 << 31)), 0]))  # fmt: skip

    def zp() -> int:
        return int(rng.choice([-128, 127, 128, 0, int(rng.integers(-128, 128)),
                               int(rng.integers(-300, 300))]))  # fmt: skip

    def in_shift() -> int:
        return int(rng.choice([0, -1, 1, -left_shift - 1, -left_shift + 7, -left_shift - 2,
                               2 - left_shift, int(rng.integers(-31, 2))]))  # fmt: skip

    e1, e2 = max(in_shift(), -31), max(in_shift(), -31)
    # ~ the output shift that keeps a + b near int8: a is about 2^(L + e + 7)
    eo = -(left_shift + max(e1, e2) + 7) + int(rng.integers(-3, 10))
    eo = int(rng.choice([eo, eo, -2, -1, 0, int(rng.integers(-31, 1))]))
    lo, hi = sorted(int(v) for v in rng.integers(-128, 128, 2))
    if rng.random() < 0.3:
        lo, hi = -128, 127
    elif rng.random() < 0.1:
        lo, hi = hi, lo
    return {"x1": rng.integers(-128, 128, n, np.int8), "x2": rng.integers(-128, 128, n, np.int8),
            "input1_zp": zp(), "input1_multiplier": mult(), "input1_shift": e1,
            "input2_zp": zp(), "input2_multiplier": mult(), "input2_shift": e2,
            "output_zp": zp(), "output_multiplier": mult(), "output_shift": max(min(eo, 30), -31),
            "act_min": lo, "act_max": hi, "left_shift": left_shift}  # fmt: skip


def edge_fast_add(rng: np.random.Generator, n: int) -> dict:
    """Parameters at the edges of the kernel's fast form (and its assembly): pre-shifts
    s = left_shift + shift + 1 from 8 to 22, zero points -128..128, multipliers up to
    2^31 - 1, output shifts from saturating everything to barely scaling, any clamp."""
    p = extreme_add(rng, n)
    left_shift = int(rng.choice([20, 20, 20, 22, int(rng.integers(7, 23))]))
    s1, s2 = (int(rng.choice([8, 22, 21, int(rng.integers(8, 23))])) for _ in range(2))
    for i, s_ in (("1", s1), ("2", s2)):
        p[f"input{i}_shift"] = s_ - left_shift - 1
        p[f"input{i}_zp"] = int(rng.choice([-128, 127, 128, int(rng.integers(-128, 129))]))
    # a + b is up to 2^(s + 8): the output is then up to about 2^(7 + offset), even 2^15
    offset = int(rng.choice([-3, -1, 0, 1, 2, 3, 4, int(rng.integers(5, 10))]))
    eo = -max(s1, s2) - 1 + offset
    p["output_shift"] = max(min(eo, -2), -31)
    p["output_zp"] = int(rng.choice([-128, 127, *rng.integers(-128, 128, 4)]))
    for key in ["input1_multiplier", "input2_multiplier", "output_multiplier"]:
        top = int(rng.integers(1 << 30, 1 << 31))
        small = [0, 12345] if key != "output_multiplier" else []
        p[key] = int(rng.choice([1 << 30, (1 << 31) - 1, *[top] * 6, *small]))
    if rng.random() < 0.5:
        p["act_min"], p["act_max"] = -128, 127
    p["left_shift"] = left_shift
    return p


@pytest.mark.parametrize("seed", range(300))
def test_add_fast_form_edges(seed: int) -> None:
    rng = np.random.default_rng(5000 + seed)
    n = int(rng.choice([1, 3, 4, 5, 8, 11, 64, 129]))
    p = edge_fast_add(rng, n)
    out, guard = guarded_out((n,))
    c_add(p, out=out)
    assert np.all(guard == 0x5A), "output overrun"
    np.testing.assert_array_equal(out, add(**p))


@pytest.mark.parametrize("seed", range(400))
def test_add_extreme_parameters(seed: int) -> None:
    rng = np.random.default_rng(1000 + seed)
    n = int(rng.choice([1, 2, 3, 4, 5, 6, 7, 8, 9, 63, 64, 65, 257]))
    p = extreme_add(rng, n)
    out, guard = guarded_out((n,))
    c_add(p, out=out)
    assert np.all(guard == 0x5A), "output overrun"
    np.testing.assert_array_equal(out, add(**p))


def add_case_list() -> list[dict]:
    """Edge cases for the ARM build: lengths around the 4-element loop, unaligned and
    in-place buffers, the fast form's limits, and parameters that leave it."""
    rng = np.random.default_rng(77)
    cases = []
    for n in [1, 2, 3, 4, 5, 6, 7, 8, 9, 15, 16, 17, 1024]:
        p, _ = random_add(rng, n)
        cases.append(p)
    for _ in range(6):  # a ReLU-like clamp and a narrow one
        p, _ = random_add(rng, int(rng.integers(8, 40)))
        p["act_min"], p["act_max"] = sorted(int(v) for v in rng.integers(-128, 128, 2))
        cases.append(p)
    every = np.tile(np.arange(-128, 128), 8).astype(np.int8)  # each value 8 times
    for scales, zps in [
        ((0.02, 0.02, 0.04), (5, -17, -3)),
        ((0.1, 0.001, 0.09), (-128, 127, 0)),
        ((0.003, 0.05, 0.2), (127, -128, 127)),
        ((1.0, 0.004, 0.3), (0, 0, -128)),
    ]:
        cases.append({"x1": every, "x2": rng.permutation(every),
                      **add_params(scales[0], zps[0], scales[1], zps[1], scales[2], zps[2]),
                      "act_min": -128, "act_max": 127})  # fmt: skip
    for _ in range(30):
        cases.append(extreme_add(rng, int(rng.choice([3, 4, 7, 12, 33, 64]))))
    for _ in range(90):
        cases.append(edge_fast_add(rng, int(rng.choice([4, 7, 12, 33, 64]))))
    return cases


def test_add_arm_matches_reference_on_qemu(tmp_path) -> None:
    """The Cortex-M7 assembly (host tests run the portable C) against the reference, with
    unaligned buffers and output == input1 or input2 as the planner may arrange."""
    from tinyformer.engine.cmodel import CModel

    cases = add_case_list()
    data, places, off = [], [], 0
    for i, p in enumerate(cases):
        n = p["x1"].size
        mis = (i % 4, (i // 4) % 4, (i // 16) % 4)  # every mix of byte offsets
        o1 = off + mis[0]
        o2 = o1 + n + 4 + mis[1]
        oo = o2 + n + 4 + mis[2]
        if i % 5 == 3:
            oo = o1  # in place over input1
        elif i % 5 == 4:
            oo = o2  # in place over input2
        places.append((o1, o2, oo))
        off = -(-(max(o2, oo) + n + 8) // 16) * 16
    data = np.zeros(off, np.int8)
    # the output is the whole data area
    cm = CModel(name="add_edges", arena_bytes=off, input_offset=0, input_bytes=off,
                output_offset=0, output_bytes=off, includes=["tf_add_s8.h"])  # fmt: skip
    for p, (o1, o2, oo) in zip(cases, places, strict=True):
        n = p["x1"].size
        data[o1 : o1 + n], data[o2 : o2 + n] = p["x1"], p["x2"]
        args = ", ".join(str(int(p[k])) for k in ADD_ARGS)
        code = f"    tf_add_s8(arena + {o1}, arena + {o2}, {n}, {args}, arena + {oo});"
        cm.layers.append((f"add n={n}", code))
    m = run_on_qemu(cm, data.tobytes(), tmp_path)
    got = np.frombuffer(m.output, np.int8)
    for i, (p, (_, _, oo)) in enumerate(zip(cases, places, strict=True)):
        ref = add(**p)
        np.testing.assert_array_equal(got[oo : oo + ref.size], ref, err_msg=f"case {i}: {p}")
    # the 16x64 add (case 12) in the 4-element loop: about 11 instructions an element
    assert m.layer_counts[12] < 14 * 1024, m.layer_counts[12]


ADD_ARGS = ["input1_zp", "input1_multiplier", "input1_shift", "input2_zp", "input2_multiplier",
            "input2_shift", "output_zp", "output_multiplier", "output_shift", "act_min",
            "act_max", "left_shift"]  # fmt: skip


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
