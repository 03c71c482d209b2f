"""The C fully connected kernel equals the numpy reference bit for bit."""

import numpy as np
import pytest
from host_kernels import load, ptr

from tinyformer.engine.intmath import quantize_multipliers
from tinyformer.engine.ops.linear import fold_input_zero_point, fully_connected


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
    scratch = np.zeros(max(1, (k // 4) * 4 * 8), np.uint8)
    load().tf_fully_connected_s8(
        ptr(p["x"]), ptr(p["weights"]), ptr(bias), ptr(p["multiplier"]), ptr(p["shift"]),
        p["output_zp"], p["act_min"], p["act_max"], n, k, m, ptr(out), ptr(scratch),
    )
    return out


@pytest.mark.parametrize("seed", range(40))
def test_matches_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, k, m = (int(v) for v in rng.integers(1, 70, 3))
    p = random_fc(rng, n, k, m)
    np.testing.assert_array_equal(run_c(p), fully_connected(**p))


def test_output_not_saturated_everywhere() -> None:
    # Guards the test itself: a scale that clamps every output would hide kernel bugs.
    p = random_fc(np.random.default_rng(1), 16, 64, 32)
    out = fully_connected(**p)
    assert len(np.unique(out)) > 20
