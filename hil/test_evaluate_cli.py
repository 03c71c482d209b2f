"""`tinyformer evaluate` as a user runs it: refuses data the model was not made for, prints
percentages, shows progress, and --json carries the confusion matrix."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyformer.compiler.driver import compile_model
from tinyformer.engine import ir
from tinyformer.model.config import SupernetSpace
from tinyformer.nas.candidate import config_graph

CLI = [sys.executable, "-m", "tinyformer.cli"]


@pytest.fixture(autouse=True)
def _qemu_only(target) -> None:
    if target.name != "qemu":
        pytest.skip("the compiled model here is an mps2-an500 build")


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The digits space's smallest subnet with random weights, compiled: 8x8x1, 10 classes."""
    folder = tmp_path_factory.mktemp("digits")
    ir.save(config_graph(SupernetSpace.for_dataset("digits").smallest()), folder / "m.tfir")
    compile_model(folder / "m.tfir", folder / "fw")
    return folder / "fw"


def _folder(root: Path, classes: int, per_class: int) -> Path:
    """An image folder of 8x8 grey .npy images, ``classes`` classes."""
    rng = np.random.default_rng(classes)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True)
        for i in range(per_class):
            np.save(root / f"c{c}" / f"{i}.npy", rng.integers(0, 256, (8, 8), np.uint8))
    return root


@pytest.fixture(scope="module")
def ten_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _folder(tmp_path_factory.mktemp("folder") / "imgs", 10, 5)


def _evaluate(model: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "evaluate", str(model), *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_json_has_the_confusion_matrix_and_progress_shows(
    digits_model, ten_classes, tmp_path
) -> None:
    folder = ["--dataset", "folder", "--root", str(ten_classes)]
    proc = _evaluate(digits_model, *folder, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    acc = json.loads(proc.stdout)
    confusion = np.array(acc["confusion"])
    assert confusion.shape == (10, 10) and acc["classes"] == [f"c{c}" for c in range(10)]
    n = acc["images"]
    assert confusion.sum() == n  # one cell per image: [true class][firmware's prediction]
    assert np.trace(confusion) == round(acc["accuracy"] * n)
    assert acc["bit_exact"] == 1.0 and acc["agreement"] == 1.0
    assert f"{n}/{n} [" in proc.stderr  # the progress bar, on stderr, left at its end
    # the mean latency per inference, in counts and in ms at 216 MHz (an estimate on QEMU:
    # no calibration in this empty results folder, so the stated CPI model, flash included)
    assert acc["count_unit"] == "instructions" and acc["mean_count_per_inference"] > 0
    assert acc["latency_ms"] >= round(0.8 * acc["mean_count_per_inference"] / 216e3, 3) > 0
    assert acc["latency_ms_basis"].startswith("estimate at 216 MHz from instructions (Cortex-M7")


def test_table_prints_percentages_with_two_decimals(digits_model, ten_classes, tmp_path) -> None:
    folder = ["--dataset", "folder", "--root", str(ten_classes)]
    proc = _evaluate(digits_model, *folder, "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for key in ("accuracy", "reference_accuracy", "agreement", "bit_exact"):
        assert re.search(rf"\b{key}\s*│\s*\d{{1,3}}\.\d\d %", proc.stdout), proc.stdout
    assert re.search(r"mean_count_per_inference\s*│\s*[\d,]+\s", proc.stdout), proc.stdout
    assert re.search(r"latency_ms\s*│\s*\d+\.\d+\s", proc.stdout), proc.stdout
    assert "estimate at 216 MHz" in proc.stdout
    assert "100.00 %" in proc.stdout  # agreement and bit_exact
    assert proc.stderr == ""  # --no-progress: no bar


def test_a_folder_of_other_classes_is_refused_in_one_line(digits_model, tmp_path) -> None:
    _folder(tmp_path / "imgs", 2, 10)
    proc = _evaluate(digits_model, "--dataset", "folder", "--root", "imgs", cwd=tmp_path)
    assert proc.returncode == 1
    assert "2 classes, the model has 10 outputs" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
