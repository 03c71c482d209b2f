"""Accuracies reach people as percentages with two decimals (train's and demo's summaries,
the epoch lines), while --json and the results tables keep the fractions."""

from __future__ import annotations

import json
import re
from pathlib import Path

from test_prune import tiny_config  # tests/ is on sys.path (conftest.py)
from typer.testing import CliRunner

from tinyformer.cli import app, demo_display
from tinyformer.results import percent

SETTINGS = [
    "--config", tiny_config().to_json(indent=None), "--epochs", "1", "--prune-epochs", "1",
    "--finetune-epochs", "1", "--qat-epochs", "1", "--sparsity", "0.5", "--threads", "1",
    "--device", "cpu",
]  # fmt: skip
FRACTIONS = ("float_test_acc", "pruned_test_acc", "qat_test_acc", "reference_acc", "agreement",
             "exact_logits")  # fmt: skip


def test_percent_has_two_decimals() -> None:
    assert percent(0.22841225626740946) == "22.84 %"
    assert percent(1.0) == "100.00 %" and percent(0.0) == "0.00 %"


def test_train_prints_percentages_and_its_json_keeps_fractions(tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["train", "-o", str(tmp_path / "a"), *SETTINGS])
    assert shown.exit_code == 0, shown.output
    for key in FRACTIONS:
        assert re.search(rf"^\s*{key}\s+\d{{1,3}}\.\d\d %\s*$", shown.output, re.M), shown.output
    # each phase's epoch line too
    assert re.search(r"qat epoch 1: loss [\d.]+, val acc \d{1,3}\.\d\d %", shown.output)
    as_json = runner.invoke(app, ["train", "-o", str(tmp_path / "b"), *SETTINGS, "--json"])
    summary = json.loads(as_json.output.splitlines()[-1])
    assert all(isinstance(summary[k], float) and 0 <= summary[k] <= 1 for k in FRACTIONS)


def test_demo_summary_shows_fractions_as_percentages() -> None:
    summary = {"model": "m", "test_images": 359, "float_test_acc": 0.9861,
               "qat_test_acc": 0.98, "target_test_acc": 0.22841225626740946,
               "target_reference_agreement": 1.0, "bit_exact_fraction": 1.0,
               "weight_sparsity": 0.75, "latency_ms": 3.905}  # fmt: skip
    shown = demo_display(summary)
    assert shown["target_test_acc"] == "22.84 %" and shown["float_test_acc"] == "98.61 %"
    assert shown["target_reference_agreement"] == "100.00 %"
    assert shown["bit_exact_fraction"] == "100.00 %"
    # not accuracies: left as they are
    assert shown["latency_ms"] == 3.905 and shown["test_images"] == 359
