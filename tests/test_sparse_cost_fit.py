"""The cost model's fit: keyed to the kernels it measured, loaded strictly, and recovered by
the bench's fitting function from calls made with known coefficients (the fresh QEMU check
of the shipped fit is hil/test_sparse_cost_model_on_qemu.py)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tinyformer.engine.kernel_headers import FIRMWARE_DIR, cost_kernel_files, kernel_sources_key
from tinyformer.engine.sparse_cost import (
    DENSE_TERMS,
    FITTED,
    SPARSE_TERMS,
    CostModelError,
    predict,
    shipped_fit,
)
from tinyformer.hil.targets.board import BoardTarget
from tinyformer.perf.sparse_cost_bench import (
    GRID,
    bench_sparse_cost,
    call_terms,
    fit_calls,
    grid_calls,
)

REFIT = "tinyformer bench sparse-cost --target qemu"


def test_shipped_fit_is_of_the_current_kernels() -> None:
    fit = shipped_fit()
    assert fit.kernel_sources == kernel_sources_key(), (
        f"the dense/sparse FC and conv kernels or the compiler flags changed since the cost "
        f"model was fitted ({fit.kernel_sources} -> {kernel_sources_key()}): run `{REFIT}` "
        f"and commit {FITTED.name} and results/sparse_cost_calls.csv"
    )
    assert all(e.max_pct < 3.0 for e in fit.error.values()), fit.error


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    fw = tmp_path / "firmware"
    shutil.copytree(FIRMWARE_DIR / "kernels", fw / "kernels")
    shutil.copy(FIRMWARE_DIR / "Makefile", fw / "Makefile")
    return fw


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_key_follows_the_measured_kernels_only(firmware: Path) -> None:
    names = {p.name for p in cost_kernel_files(firmware / "kernels")}
    assert {"tf_sparse_fully_connected_s8_arm.S", "tf_conv2d_s8.c", "tf_dsp.h"} <= names
    assert "tf_add_s8.c" not in names
    key = kernel_sources_key(firmware)
    assert key == kernel_sources_key()
    # comments and other kernels keep it
    (firmware / "kernels" / "tf_conv2d_s8.c").write_text(
        "// a note\n" + (firmware / "kernels" / "tf_conv2d_s8.c").read_text()
    )
    (firmware / "kernels" / "tf_add_s8.c").write_text("int changed;\n")
    assert kernel_sources_key(firmware) == key
    # the sparse assembly, a header they include, the compiler flags change it
    for path, old, new in [
        (
            firmware / "kernels" / "tf_sparse_fully_connected_s8_arm.S",
            "sxtb16  r8, r9",
            "sxtb16  r8, r9\n    nop",
        ),
        (firmware / "kernels" / "tf_dsp.h", "#define TF_DSP_H", "#define TF_DSP_H\n#define TF_X 1"),
        (firmware / "Makefile", "OPT ?= -O2", "OPT ?= -O3"),
    ]:
        _edit(path, old, new)
        assert kernel_sources_key(firmware) != key, path.name
        key = kernel_sources_key(firmware)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (None, "is missing"),
        ("{", "is damaged"),
        ({"dense": {}}, r"is damaged \(dense: expected the terms"),
        ({"sparse": {"per_call": float("nan")}}, "is damaged"),
        ({"calls": 0}, r"is damaged \(calls: not a positive integer"),
    ],
)
def test_a_missing_or_damaged_fit_is_one_line(tmp_path: Path, damage, why: str) -> None:
    path = tmp_path / "sparse_cost.json"
    if isinstance(damage, str):
        path.write_text(damage)
    elif isinstance(damage, dict):
        data = json.loads(FITTED.read_text())
        for key, value in damage.items():
            data[key] = {**data[key], **value} if key == "sparse" else value
        path.write_text(json.dumps(data))
    with pytest.raises(CostModelError, match=why) as exc:
        shipped_fit(path)
    assert "\n" not in str(exc.value) and REFIT in str(exc.value)


def test_fit_recovers_known_coefficients_on_the_bench_grid() -> None:
    """Counts made from known coefficients over the bench's own grid: the grid identifies
    every term and the fit (relative NNLS) gives the coefficients back."""
    rng = np.random.default_rng(1)
    known = {
        "dense": {n: float(rng.uniform(0.5, 200)) for n in DENSE_TERMS},
        "sparse": {n: float(rng.uniform(0.5, 200)) for n in SPARSE_TERMS},
    }
    calls = pd.DataFrame([c for problem, s in GRID for c in grid_calls(problem, s)])
    calls["kernel"] = [
        ("tf_fully_connected_s8" if op == "linear" else "tf_conv2d_s8")
        if b == 0
        else ("tf_sparse_fully_connected_s8" if op == "linear" else "tf_sparse_conv2d_s8")
        for op, b in zip(calls["op"], calls["block"], strict=True)
    ]
    calls["count"] = [
        round(predict(known["dense" if row["block"] == 0 else "sparse"], call_terms(row)))
        for _, row in calls.iterrows()
    ]
    calls["unit"], calls["kernel_sources"], calls["time"] = "instructions", "abc", "t"
    fit = fit_calls(calls)
    assert fit.calls == len(calls) > 400
    for name, value in known["dense"].items():
        assert fit.dense[name] == pytest.approx(value, rel=0.01), name
    for name, value in known["sparse"].items():
        assert fit.sparse[name] == pytest.approx(value, rel=0.01), name
    assert max(e.max_pct for e in fit.error.values()) < 0.05  # counts are whole numbers


def test_fit_refuses_calls_that_miss_a_term() -> None:
    problem, s = GRID[0]  # the linear 64x96x192 alone: no conv, no leftover tokens
    calls = pd.DataFrame(grid_calls(problem, s))
    calls["kernel"] = np.where(calls["block"] == 0, "tf_fully_connected_s8", "sparse")
    calls["count"], calls["unit"], calls["kernel_sources"], calls["time"] = (
        1e5,
        "instructions",
        "",
        "",
    )
    with pytest.raises(ValueError, match="do not cover the cost model's terms"):
        fit_calls(calls)


def test_bench_refuses_a_target_that_counts_cycles(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="use --target qemu"):
        bench_sparse_cost(BoardTarget(port=str(tmp_path / "tty")), tmp_path, tmp_path / "fit.json")
    assert list(tmp_path.iterdir()) == []  # nothing measured, nothing written
