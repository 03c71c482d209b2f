"""The --layers report: predictions from the user's samples, else the fit shipped with the
package, else a line saying why and what to run; the board predicted from QEMU's model;
milliseconds, layer names and a total row."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from tinyformer.compiler.source_hash import firmware_id
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.perf import predictor as predictor_module
from tinyformer.perf.latency import SampleStore, op_features, samples_of
from tinyformer.perf.layer_report import (
    LayerReport,
    measured_layers,
    notes,
    predicted_layers,
    table,
)
from tinyformer.perf.milliseconds import CPI_CORE, FLASH_LINE_CYCLES
from tinyformer.perf.predictor import predictor, shipped

GRAPH = random_hybrid_graph(seed=4)


def rendered(report: LayerReport) -> str:
    console = Console(width=300, record=True, file=io.StringIO())
    console.print(table(report))
    return console.export_text()


def test_a_folder_without_samples_predicts_from_the_shipped_fit(tmp_path: Path) -> None:
    report = predicted_layers(GRAPH, "mps2-an500", tmp_path / "results", tmp_path / "c.png")
    fit = shipped("qemu", "instructions")
    assert fit is not None
    assert all(r.predicted is not None for r in report.rows), "blank predictions"
    assert report.rows[0].predicted == round(fit[0].predict_node(GRAPH.nodes[0], GRAPH))
    assert "shipped fit" in report.predicted_from and "no samples in" in report.predicted_from
    assert report.total_ms == pytest.approx(sum(ms or 0 for ms in report.layer_ms))
    assert (tmp_path / "c.png").stat().st_size > 0
    text = rendered(report)
    assert "total" in text.splitlines()[-1]
    assert f"{sum(r.predicted or 0 for r in report.rows):,}" in text.splitlines()[-1]
    for node in GRAPH.nodes:
        assert node.name in text
    lines = notes(report)
    assert any(line.startswith("ms: estimate at 216 MHz") for line in lines)
    assert f"latency chart: {tmp_path / 'c.png'}" in lines


def test_no_samples_and_no_shipped_fit_says_why_and_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(predictor_module, "FITTED", tmp_path / "nothing")
    report = predicted_layers(GRAPH, "mps2-an500", tmp_path / "results", None)
    assert {r.predicted for r in report.rows} == {None}
    assert report.total_ms is None
    assert "no prediction" in report.predicted_from
    assert "tinyformer bench latency --target qemu" in report.predicted_from
    assert any(line.startswith("predictions: no prediction") for line in notes(report))


def test_the_users_samples_win_and_missing_op_kinds_are_named(tmp_path: Path) -> None:
    only = random_hybrid_graph(seed=5)
    counts = [1000 + i for i in range(len(only.nodes))]
    # samples of the linear layers only: the other kinds have no prediction, and say so
    rows = [
        r for r in samples_of(only, counts, "qemu", "instructions") if r["op"].startswith("linear")
    ]
    SampleStore(tmp_path).add(rows)
    p = predictor(tmp_path, "qemu", "instructions")
    assert p.source.startswith(f"fitted on {len(rows)} qemu samples")
    report = predicted_layers(GRAPH, "mps2-an500", tmp_path, None)
    kinds = [op_features(n, GRAPH)[0] for n in GRAPH.nodes]
    assert report.missing == sorted({k for k in kinds if not k.startswith("linear")})
    assert any(line.startswith("no prediction for ") for line in notes(report))
    assert [r.predicted is not None for r in report.rows] == [k.startswith("linear") for k in kinds]


def test_the_board_is_predicted_in_cycles_from_qemus_model(tmp_path: Path) -> None:
    qemu = predicted_layers(GRAPH, "mps2-an500", tmp_path, None)
    board = predicted_layers(GRAPH, "stm32f746", tmp_path, None)
    assert board.unit == "cycles" and qemu.unit == "instructions"
    assert "estimated from QEMU instructions" in board.predicted_from
    constants = generate(GRAPH, plan_graph(GRAPH)).layer_constant_bytes
    fit = shipped("qemu", "instructions")
    assert fit is not None
    for node, row, flash in zip(GRAPH.nodes, board.rows, constants, strict=True):
        cycles = CPI_CORE * fit[0].predict_node(node, GRAPH)
        assert row.predicted == round(cycles + FLASH_LINE_CYCLES * math.ceil(flash / 32))
    assert board.total_ms == pytest.approx(sum(r.predicted or 0 for r in board.rows) / 216e3)


def test_a_run_shows_milliseconds_beside_counts(tmp_path: Path) -> None:
    counts = [2000 * (i + 1) for i in range(len(GRAPH.nodes))]
    report = measured_layers(GRAPH, counts, "cycles", "board", tmp_path, None)
    assert report.layer_ms == pytest.approx([c / 216e3 for c in counts])
    assert "measured" in report.ms_basis
    # no board samples: cycles predicted from QEMU's instruction model, and said so
    assert report.predicted_from.startswith("cycles estimated from QEMU instructions")
    assert None not in [r.predicted for r in report.rows]
    last = rendered(report).splitlines()[-1]
    assert "total" in last and f"{sum(counts):,}" in last and "100.0%" in last
    data = json.loads(json.dumps(report.to_json()))
    assert [r["name"] for r in data["per_layer"]] == [n.name for n in GRAPH.nodes]
    assert data["layers_ms"] == pytest.approx(sum(counts) / 216e3, abs=1e-3)
    # the latency model's predictions in both units too: counts and their ms
    predicted = [r.predicted or 0 for r in report.rows]
    assert report.predicted_ms == pytest.approx([p / 216e3 for p in predicted])
    assert [r["predicted_ms"] for r in data["per_layer"]] == pytest.approx(
        [p / 216e3 for p in predicted], abs=1e-4
    )
    assert "pred ms" in rendered(report)
    assert f"{sum(predicted) / 216e3:.3f}" in last


def _shipped_as(firmware: str, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The packaged fit as though measured with ``firmware``'s id."""
    data = json.loads((predictor_module.FITTED / "qemu_instructions.json").read_text())
    folder.mkdir()
    (folder / "qemu_instructions.json").write_text(json.dumps(data | {"firmware": firmware}))
    monkeypatch.setattr(predictor_module, "FITTED", folder)


def test_a_shipped_fit_of_other_firmware_says_it_may_be_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the firmware id changes with every kernel edit: a stale shipped fit still predicts,
    # and the note under the table says so and what to run
    _shipped_as("0123456789ab", tmp_path / "fitted", monkeypatch)
    p = predictor(tmp_path / "results", "qemu", "instructions")
    assert p.stale and p.model is not None
    assert "firmware 0123456789ab" in p.source and "may be off" in p.source
    assert "tinyformer bench latency --target qemu" in p.source
    report = predicted_layers(GRAPH, "mps2-an500", tmp_path / "results", None)
    assert any("may be off" in line for line in notes(report))


def test_a_shipped_fit_of_this_firmware_has_no_stale_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _shipped_as(firmware_id(), tmp_path / "fitted", monkeypatch)
    p = predictor(tmp_path / "results", "qemu", "instructions")
    assert not p.stale and "may be off" not in p.source
    report = predicted_layers(GRAPH, "mps2-an500", tmp_path / "results", None)
    assert not any("may be off" in line for line in notes(report))
