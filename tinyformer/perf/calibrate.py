"""Measure graphs on a target and check the latency model against held-out measurements."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from tinyformer.compiler.driver import CompileReport, compile_model, firmware_in
from tinyformer.compiler.source_hash import firmware_id
from tinyformer.engine import ir
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.hil.measure import Measurement, measure
from tinyformer.hil.targets.base import Target
from tinyformer.perf.latency import LatencyModel, SampleStore, mape, samples_of
from tinyformer.perf.milliseconds import CycleModel, inference_ms
from tinyformer.results import now_iso, write_atomic

LATENCY_REPORT = "latency_model.csv"


def measure_graph(
    target: Target, graph: ir.Graph, workdir: Path, x: np.ndarray | None = None
) -> tuple[Measurement, CompileReport]:
    """Compile ``graph`` into ``workdir`` and run one inference (random input by default)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    report = compile_model(ir.save(graph, workdir / "model.tfir"), workdir / "out", target.board)
    fw, _ = firmware_in(workdir / "out", target.board)
    if x is None:
        shape = graph.tensors[graph.inputs[0]].shape
        x = np.random.default_rng(0).integers(-128, 128, shape, dtype=np.int8)
    return measure(target, fw, np.asarray(x, np.int8).tobytes()), report


def random_candidates(n: int, seed: int) -> list[ir.Graph]:
    """Hybrid graphs over a range of widths, depths, heads and resolutions."""
    rng = np.random.default_rng(seed)
    graphs = []
    for i in range(n):
        heads = int(rng.choice([1, 2, 4]))
        graphs.append(
            random_hybrid_graph(
                seed=seed * 1000 + i,
                size=int(rng.choice([8, 12, 16])),
                channels=int(rng.choice([1, 3])),
                width=int(rng.choice([8, 12, 16, 24])),
                dim=heads * int(rng.choice([4, 8, 12])),
                heads=heads,
                blocks=int(rng.integers(1, 4)),
                classes=10,
            )
        )
    return graphs


def check_latency_model(
    target: Target, results: Path, n_fit: int = 8, n_test: int = 4, seed: int = 0
) -> pd.DataFrame:
    """Measure fresh candidates, fit on ``n_fit``, report MAPE on the other ``n_test``.

    Every measured layer joins the persistent sample table, so the next fit is better.
    """
    store = SampleStore(results)
    graphs = random_candidates(n_fit + n_test, seed)
    measured = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, graph in enumerate(graphs):
            m, _ = measure_graph(target, graph, Path(tmp) / str(i))
            measured.append(m)
    unit = measured[0].count_unit
    fit_rows = [
        row
        for g, m in zip(graphs[:n_fit], measured[:n_fit], strict=True)
        for row in samples_of(g, m.layer_counts, target.name, unit)
    ]
    # without earlier runs' samples of these graphs: held-out ones would not be held out,
    # and the fitted ones would count twice (their new samples replace them below)
    history = store.load()
    history = history[~history["model_id"].isin({g.name for g in graphs})]
    model = LatencyModel.fit(pd.concat([history, pd.DataFrame(fit_rows)]), target.name, unit)
    predicted = [model.predict(g) for g in graphs[n_fit:]]
    actual = [m.total for m in measured[n_fit:]]
    store.add(
        row
        for g, m in zip(graphs, measured, strict=True)
        for row in samples_of(g, m.layer_counts, target.name, unit)
    )
    table = pd.DataFrame(
        {
            "model_id": [g.name for g in graphs[n_fit:]],
            "measured": actual,
            "predicted": np.round(predicted).astype(int),
        }
    )
    cycles = CycleModel.from_results(results)  # ms at 216 MHz, calibrated where it can be
    for column, counts in (("measured", actual), ("predicted", predicted)):
        held = zip(graphs[n_fit:], counts, strict=True)
        timings = [inference_ms(g, c, unit, cycles) for g, c in held]
        table[f"{column}_ms"] = [round(t.ms, 3) for t in timings]
    table["ms_basis"] = timings[0].basis
    table["error_pct"] = ((table["predicted"] - table["measured"]) / table["measured"] * 100).round(
        3
    )
    table["mape_pct"] = round(mape(predicted, actual), 3)
    table["fit_models"], table["target"], table["unit"] = n_fit, target.name, unit
    table["time"] = now_iso()
    write_atomic(table, Path(results) / LATENCY_REPORT)
    return table


def check_held_out(
    samples: pd.DataFrame,
    totals: Mapping[str, float],
    groups: Mapping[str, str],
    target: str,
    unit: str,
) -> pd.DataFrame:
    """Leave one group out: per group, fit on every current-firmware sample but its models'
    and predict each of its models (``totals``: model -> measured count) from its layers.

    ``predicted`` is what the search gets (signatures measured on other models answered
    exactly); ``predicted_fit`` the fitted features alone, the transfer to unseen shapes.
    A layer whose op kind the fit has no samples of is counted in ``unpredicted``.
    """
    rows = samples[
        (samples["target"] == target)
        & (samples["unit"] == unit)
        & (samples["firmware"] == firmware_id())
    ]
    out = []
    for group in sorted(set(groups.values())):
        held = sorted(m for m, g in groups.items() if g == group)
        model = LatencyModel.fit(rows[~rows["model_id"].isin(held)], target, unit)
        for name in held:
            layers = rows[rows["model_id"] == name]
            pred, fit, missing = 0.0, 0.0, 0
            for kind, feats in zip(layers["op"], layers["features"], strict=True):
                try:
                    pred += model.predict_features(kind, json.loads(feats))
                    fit += model.predict_features(kind, json.loads(feats), exact=False)
                except KeyError:
                    missing += 1
            out.append(
                {
                    "model": name,
                    "group": group,
                    "layers": len(layers),
                    "unpredicted": missing,
                    "measured": int(totals[name]),
                    "predicted": round(pred),
                    "predicted_fit": round(fit),
                }
            )
    table = pd.DataFrame(out)
    if table.empty:
        return table
    for col, err in (("predicted", "error_pct"), ("predicted_fit", "error_fit_pct")):
        table[err] = ((table[col] - table["measured"]) / table["measured"] * 100).round(3)
    # the error of what is predicted: a model with an unpredicted layer is counted apart
    whole = table[table["unpredicted"] == 0]
    table["mape_pct"] = round(mape(whole["predicted"], whole["measured"]), 3)
    table["mape_fit_pct"] = round(mape(whole["predicted_fit"], whole["measured"]), 3)
    table["target"], table["unit"], table["firmware"] = target, unit, firmware_id()
    table["time"] = now_iso()
    return table


__all__ = [
    "LatencyModel",
    "check_held_out",
    "check_latency_model",
    "measure_graph",
    "random_candidates",
]
