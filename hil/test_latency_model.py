"""The latency model learns from real QEMU runs and predicts unseen candidates."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd

from tinyformer.engine import ir
from tinyformer.perf.calibrate import measure_graph, random_candidates
from tinyformer.perf.latency import LatencyModel, SampleStore, mape, samples_of


def test_fit_on_measured_models_predicts_held_out_ones(target, tmp_path) -> None:
    graphs = random_candidates(6, seed=5)
    runs = [measure_graph(target, g, tmp_path / str(i))[0] for i, g in enumerate(graphs)]
    unit = runs[0].count_unit
    store = SampleStore(tmp_path / "results")
    for g, m in zip(graphs[:4], runs[:4], strict=True):
        store.add(samples_of(g, m.layer_counts, target.name, unit))
    model = store.model(target.name, unit)
    # A measured model is answered from its own layers' samples (clamping branches make
    # counts depend a little on the data, so equal layers may differ by a few instructions)...
    assert abs(model.predict(graphs[0]) - runs[0].total) <= 0.005 * runs[0].total
    # ...and the per-layer counts add up to the run's total.
    assert abs(sum(runs[0].layer_counts) - runs[0].total) <= 0.001 * runs[0].total
    # Unseen shapes come from the fitted per-op models.
    err = mape([model.predict(g) for g in graphs[4:]], [m.total for m in runs[4:]])
    assert err < 10.0
    # Samples accumulate across runs (a second store on the same folder sees them).
    again = SampleStore(tmp_path / "results").load()
    assert len(again) == sum(len(g.nodes) for g in graphs[:4])
    other = LatencyModel.fit(pd.DataFrame(again), "renode", unit)
    assert not other.coefs
    # Counts measured with other firmware sources are stale: kept, but never fitted on.
    stale = again.assign(firmware="0123456789ab")
    assert not LatencyModel.fit(stale, target.name, unit).coefs
    # `compile --layers` shows each layer's prediction before any run (QEMU's counts).
    if target.name == "qemu":
        ir.save(graphs[4], tmp_path / "unseen.tfir")
        cmd = [sys.executable, "-m", "tinyformer.cli", "compile", "unseen.tfir", "-o", "out",
               "--layers", "--results", "results", "--json"]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        report = json.loads(proc.stdout)
        layers = report["per_layer"]
        compiled = ir.load(tmp_path / "out" / "model.tfir")
        assert report["layers"] == len(compiled.nodes)  # the report's own count stays
        expected = [round(model.predict_node(n, compiled)) for n in compiled.nodes]
        assert [row["predicted"] for row in layers] == expected
        assert sum(row["flash_bytes"] for row in layers) > 0


def test_sample_table_from_before_firmware_ids_is_upgraded(tmp_path) -> None:
    old = pd.DataFrame([{
        "target": "qemu", "unit": "instructions", "op": "add", "signature": "add{}",
        "features": "{}", "count": 10, "model_id": "m", "time": "t",
    }])  # fmt: skip
    old.to_csv(tmp_path / "latency_samples.csv", index=False)
    store = SampleStore(tmp_path)  # a results folder written by an older TinyFormer
    table = store.load()
    assert list(table["firmware"]) == ["unknown"]
    assert "signature" not in table.columns  # op + features again: dropped
    assert not store.model("qemu", "instructions").coefs


def test_a_model_measured_twice_counts_once(tmp_path) -> None:
    """A search killed between storing a measurement and its checkpoint measured that
    candidate again on resume: older versions appended its samples twice."""
    g = random_candidates(1, seed=3)[0]
    counts = [100 + i for i in range(len(g.nodes))]
    first = samples_of(g, counts, "qemu", "instructions", "cand")
    repeat = [r | {"time": "9999-01-01T00:00:00+00:00"} for r in first]
    pd.DataFrame(first + repeat).to_csv(tmp_path / "latency_samples.csv", index=False)
    store = SampleStore(tmp_path)
    assert len(store.load()) == len(g.nodes)
    store.add(samples_of(g, counts, "qemu", "instructions", "cand"))
    store.add(samples_of(g, counts, "qemu", "instructions", "other"))
    assert len(pd.read_csv(tmp_path / "latency_samples.csv")) == 2 * len(g.nodes)
