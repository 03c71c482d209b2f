"""The C fully connected kernel equals the numpy reference bit for bit."""

import numpy as np
import pytest
from host_kernels import load, ptr

from tinyformer.engine.intmath import quantize_multipliers
from tinyformer.engine.ops.linear import fc_scratch_bytes, fold_input_zero_point, fully_connected


def random_fc(rng: np.random.Generator, n: int, k: int, m: int) -> dict:
    scale = rng.uniform(0.2, 2.0) / np.sqrt(k) / 64
    mult, shift = quantize_multipliers(scale * rng.uniform(0.5, 1.5, m))
    return {
        "x": rng.integers(-128, 128, (n, k), dtype=np.int8),
        "weights": rng.integers(-128, 128, (m, k), dtype=np.int8),
        "bias": rng.integers(-5000, 5000, m, dtype=np.int32),
        "input_zp": int(rng.integers(-128, 128)),
        "output_zp": int(rng.integers(-128, 128)),
        "multiplier": mult,
        "shift": shift,
        "act_min": int(rng.integers(-128, -60)),
        "act_max": int(rng.integers(60, 128)),
    }


def run_c(p: dict) -> np.ndarray:
    n, k = p["x"].shape
    m = p["weights"].shape[0]
    out = np.zeros((n, m), np.int8)
    bias = fold_input_zero_point(p["weights"], p["bias"], p["input_zp"])
    scratch = np.zeros(fc_scratch_bytes(k), np.uint8)
    load().tf_fully_connected_s8(
        ptr(p["x"]),
        ptr(p["weights"]),
        ptr(bias),
        ptr(p["multiplier"]),
        ptr(p["shift"]),
        p["output_zp"],
        p["act_min"],
        p["act_max"],
        n,
        k,
        m,
        ptr(out),
        ptr(scratch),
    )
    return out


RANDOM_SEEDS = range(40)


def random_case(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    n, k, m = (int(v) for v in rng.integers(1, 70, 3))
    return random_fc(rng, n, k, m)


@pytest.mark.parametrize("seed", RANDOM_SEEDS)
def test_matches_reference(seed: int) -> None:
    p = random_case(seed)
    np.testing.assert_array_equal(run_c(p), fully_connected(**p))


def test_output_not_saturated_everywhere() -> None:
    # Guards the test itself: a scale that clamps every output would hide kernel bugs.
    p = random_fc(np.random.default_rng(1), 16, 64, 32)
    out = fully_connected(**p)
    assert len(np.unique(out)) > 20


def run_c_guarded(p: dict) -> np.ndarray:
    """run_c with canaries after the output and after exactly fc_scratch_bytes(k) of scratch."""
    n, k = p["x"].shape
    m = p["weights"].shape[0]
    out_buf = np.full(n * m + 64, 0x5A, np.int8)
    scratch_buf = np.full(fc_scratch_bytes(k) + 64, 0x5A, np.uint8)
    bias = fold_input_zero_point(p["weights"], p["bias"], p["input_zp"])
    load().tf_fully_connected_s8(
        ptr(p["x"]), ptr(p["weights"]), ptr(bias), ptr(p["multiplier"]), ptr(p["shift"]),
        p["output_zp"], p["act_min"], p["act_max"], n, k, m, ptr(out_buf), ptr(scratch_buf),
    )  # fmt: skip
    assert np.all(out_buf[n * m :] == 0x5A), "output overrun"
    assert np.all(scratch_buf[fc_scratch_bytes(k) :] == 0x5A), "scratch overrun"
    return out_buf[: n * m].reshape(n, m)


# Depths around multiples of 4 (tail groups, an odd group, k < 4), every token count up to
# two tiles and a bit (6-token tiles, the 4- and 2-token and overlapping last tiles, tokens
# alone), odd and even row counts (rows are taken in pairs for one token). Shared with the
# QEMU suite of the assembly (hil/test_fc_conv_asm.py).
GRID_DEPTHS = (1, 3, 4, 5, 6, 7, 8, 9, 12, 13, 16, 17, 33, 36)
GRID_TOKENS = tuple(range(1, 16))
GRID_ROWS = (1, 2, 3, 8)


def grid_case(n: int, k: int, m: int, full_range: bool) -> dict:
    """One problem of the grid (the same data for both activation ranges)."""
    p = random_fc(np.random.default_rng(n * 1000 + k * 10 + m), n, k, m)
    if full_range:
        p["act_min"], p["act_max"] = -128, 127
    return p


@pytest.mark.parametrize("full_range", [False, True])
@pytest.mark.parametrize("k", GRID_DEPTHS)
def test_token_counts_and_depths(k: int, full_range: bool) -> None:
    for n in GRID_TOKENS:
        for m in GRID_ROWS:
            p = grid_case(n, k, m, full_range)
            np.testing.assert_array_equal(run_c_guarded(p), fully_connected(**p))


# (shifts, output_zp, (act_min, act_max)): the fast form's bounds, the generic path (a shift
# > -2 or < -24, output_zp beyond int8) and the clamping epilogue. Shared with the QEMU suite.
REQUANT_PARAMS = [
    ((-2, -24), 0, (-128, 127)),  # the fast form's bounds
    ((-2, -24), 127, (-128, 127)),
    ((-3, -20), -128, (-128, 127)),
    ((-1, -10), 5, (-128, 127)),  # a shift > -2: the generic path
    ((-25, -10), 5, (-128, 127)),  # a shift < -24: the generic path
    ((0, 3), -7, (-100, 100)),
    ((-10, -12), 129, (-128, 127)),  # output_zp beyond int8: generic
    ((-10, -12), -3, (-5, 60)),  # an activation range: the clamping epilogue
    ((-10, -12), -3, (-128, 126)),
]


def requantization_cases(shifts, output_zp, act) -> list[dict]:
    """Multipliers and shifts chosen outright; accumulators sized to the shift so that the
    outputs spread over the int8 range (and past it, to exercise the clamps)."""
    rng = np.random.default_rng(abs(hash((shifts, output_zp, act))) % 2**32)
    cases = []
    for n, k, m in [(1, 40, 7), (13, 20, 6), (6, 8, 3), (3, 9, 2)]:
        shift = np.resize(np.asarray(shifts, np.int32), m)
        rng.shuffle(shift)
        mult = rng.integers(2**30, 2**31, m).astype(np.int32)
        amp = min(2.0 ** (-int(shift.max()) + 1) * 100, 2.0**23)
        x = rng.integers(-128, 128, (n, k), dtype=np.int8)
        w = rng.integers(-128, 128, (m, k), dtype=np.int8)
        bias = rng.integers(-int(amp), int(amp) + 1, m).astype(np.int32)
        if shift.max() > -8:  # small accumulators for large multipliers
            x = rng.integers(-3, 4, (n, k), dtype=np.int8)
            w = rng.integers(-3, 4, (m, k), dtype=np.int8)
            bias = rng.integers(-50, 51, m).astype(np.int32)
        cases.append({
            "x": x, "weights": w, "bias": bias, "input_zp": int(rng.integers(-5, 6)),
            "output_zp": output_zp, "multiplier": mult, "shift": shift,
            "act_min": act[0], "act_max": act[1],
        })  # fmt: skip
    return cases


@pytest.mark.parametrize(("shifts", "output_zp", "act"), REQUANT_PARAMS)
def test_requantization_paths(shifts, output_zp, act) -> None:
    for p in requantization_cases(shifts, output_zp, act):
        np.testing.assert_array_equal(run_c_guarded(p), fully_connected(**p))


def test_mode() -> None:
    lib = load()
    shift = np.array([-2, -24, -10], np.int32)

    def mode(s, zp=0, lo=-128, hi=127, k=8):
        s = np.asarray(s, np.int32)
        return lib.tf_fully_connected_s8_mode(ptr(s), zp, lo, hi, k, len(s))

    assert mode(shift) == 1
    assert mode(shift, lo=-100) == 2
    assert mode([-1, -10]) == 0
    assert mode([-25]) == 0
    assert mode(shift, zp=128) == 0
    assert mode(shift, k=3) == 0
    assert mode(shift, lo=10, hi=5) == 0


def test_a_pruned_away_row_keeps_the_layer_on_the_fast_path() -> None:
    """An all-zero weight row takes the largest live row's scale, so its requantization
    shift is in the others' range and the whole layer keeps the fast path (a scale of 1
    gave shift >= -1 and sent trained, pruned layers to the generic path, 4x slower)."""
    from tinyformer.engine.builder import GraphBuilder
    from tinyformer.engine.intmath import quantize_weights, weight_scales

    np.testing.assert_allclose(
        weight_scales(np.array([0.0, 12.7, 25.4, 0.0])), [0.2, 0.1, 0.2, 0.2]
    )
    assert list(weight_scales(np.zeros(2))) == [1.0, 1.0]
    rng = np.random.default_rng(0)
    w = rng.normal(0, 0.1, (24, 64))
    w[[3, 17]] = 0.0
    q, _ = quantize_weights(w)
    assert not q[[3, 17]].any()
    x = rng.integers(-128, 128, (16, 64), dtype=np.int8)
    b = GraphBuilder("dead_row", x, seed=0)
    g = b.build(b.linear("fc", b.input, 24, weights=w))
    node = g.nodes[0]
    shift = np.asarray(node.attrs["shift"], np.int32)
    lib = load()
    mode = lib.tf_fully_connected_s8_mode(
        ptr(shift), node.attrs["output_zp"], node.attrs["act_min"], node.attrs["act_max"], 64, 24
    )
    assert mode != 0, shift
