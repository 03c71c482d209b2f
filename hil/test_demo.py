"""The README's main job end to end, in miniature: SuperNAS -> supernet training -> SparseNAS
(QEMU measurements in the loop) -> pruning + QAT -> firmware -> every test image on QEMU.
Tiny settings keep it short; `make demo` runs the same code with the QUICK ones."""

from __future__ import annotations

import json
import re

import pandas as pd

from tinyformer.nas.options import SearchOptions
from tinyformer.nas.pipeline import demo


def test_demo_pipeline_end_to_end(target, tmp_path, capsys) -> None:
    opts = SearchOptions(
        supernet_epochs=1, population=3, generations=2, top_k=2, space_samples=2,
        epochs=1, prune_epochs=1, finetune_epochs=1, qat_epochs=1,
    )  # fmt: skip
    out, results = tmp_path / "demo", tmp_path / "results"
    summary = demo(opts, target, out, results, log=print)
    # long work reports as it goes: supernet epochs, generations, the winner's phases
    said = capsys.readouterr().out
    for line in ("training the supernet (1 epochs)", "val acc largest", "generation 0:",
                 "generation 1:", "float epoch 1:", "prune epoch 2:", "qat epoch 1:"):  # fmt: skip
        assert line in said, (line, said)
    # accuracies as percentages, the winner's latency in counts and ms
    chose = r"SparseNAS chose \w+: val acc \d+\.\d\d % .*, [\d,]+ \w+ \(\d+\.\d{3} ms"
    assert re.search(chose, said), said
    assert re.search(r"int8 test accuracy \d+\.\d\d %", said), said
    assert summary["test_images"] == 359
    # the deployed model is the host reference's, bit for bit, on every test image
    assert summary["target_reference_agreement"] == 1.0 and summary["bit_exact_fraction"] == 1.0
    assert summary["target_test_acc"] == summary["qat_test_acc"]
    assert 0 < summary["peak_sram_bytes"] <= summary["predicted_peak_sram_bytes"]
    assert summary["count_per_inference"] > 0 and summary["flash_bytes"] > 0
    # and in milliseconds at 216 MHz: cycles / 216 MHz, or from instructions at least 0.8 CPI
    per_ms = 216e3 if summary["count_unit"] == "cycles" else 216e3 / 0.8
    assert summary["latency_ms"] >= round(summary["count_per_inference"] / per_ms, 3) > 0
    assert json.loads((out / "summary.json").read_text())["model"] == summary["model"]
    assert (out / "supernas.json").exists() and (out / "search" / "pareto.png").exists()
    table = pd.read_csv(results / "digits_model.csv")
    assert len(table) == 1
    # the second generation's measured candidates were predicted before being measured
    check = pd.read_csv(results / "latency_search.csv")
    assert (check["search"] == str(out)).all() and len(check) >= 1
