"""The per-layer report of `compile --layers` (predicted) and `run --layers` (measured): the
profile rows, milliseconds at 216 MHz, a total row, where the predictions come from (or why
there are none and what to run), and a per-layer latency chart."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from tinyformer.boards import BOARDS
from tinyformer.compiler.profile import LayerProfile, layer_profile
from tinyformer.engine.ir import Graph
from tinyformer.perf.milliseconds import CLOCK_HZ, CycleModel, timing
from tinyformer.perf.predictor import BoardFromQemu, Predictor, predictor

CHART = "latency.png"


@dataclass(frozen=True)
class LayerReport:
    rows: list[LayerProfile]
    unit: str  # of the counts (measured) or predictions (compile)
    measured: bool
    layer_ms: list[float | None]  # at 216 MHz: of the count (run) or of the prediction
    total_ms: float | None  # of the layers together
    ms_basis: str  # measured, or how the estimate was made
    predicted_from: str  # the predictions' source, or why there are none and what to run
    missing: list[str]  # op kinds with no prediction
    chart: Path | None
    predicted_ms: list[float | None] = field(default_factory=list)  # run: the predictions'

    def to_json(self) -> dict[str, Any]:
        return {
            "per_layer": [
                {**asdict(r), "ms": _round(ms)}
                | ({"predicted_ms": _round(p)} if self.measured else {})
                for r, ms, p in zip(
                    self.rows, self.layer_ms, self.predicted_ms or self.layer_ms, strict=True
                )
            ],
            "layers_ms": None if self.total_ms is None else round(self.total_ms, 4),
            "ms_basis": self.ms_basis,
            "predicted_from": self.predicted_from,
            "no_prediction_for": self.missing,
            "latency_chart": None if self.chart is None else str(self.chart),
        }


def _predictor(
    results: Path, target: str, unit: str
) -> tuple[Predictor | BoardFromQemu, Predictor, str]:
    """The target's own samples, else (cycles) QEMU's instruction model through the cycle
    model; with the predictor whose op kinds count and where the predictions come from."""
    own = predictor(results, target, unit)
    if unit != "cycles" or (own.model is not None and not own.stale):
        return own, own, own.source
    qemu = predictor(results, "qemu", "instructions")
    if qemu.model is None:
        return own, own, own.source
    cycles = CycleModel.from_results(results)
    how = (
        f"calibrated on {cycles.layers} board layers"
        if cycles.cpi
        else "by the Cortex-M7 CPI model (README)"
    )
    source = f"cycles estimated from QEMU instructions {how}; instructions: {qemu.source}"
    return BoardFromQemu(qemu, cycles), qemu, source


def predicted_layers(graph: Graph, board: str, results: Path, chart: Path | None) -> LayerReport:
    """compile --layers: what the latency model predicts for each layer, before any run."""
    spec = BOARDS[board]  # its samples come from the target that measures this board
    pred, fitted, source = _predictor(results, spec.target, spec.count_unit)
    rows = layer_profile(graph, predict=pred.predict)
    unit = spec.count_unit
    missing = fitted.missing(graph)
    t = timing(graph, [r.predicted for r in rows], unit, CycleModel.from_results(results))
    basis = f"predicted {unit} / {CLOCK_HZ / 1e6:g} MHz" if unit == "cycles" else t.basis
    report = LayerReport(
        rows,
        unit,
        False,
        t.layer_ms,
        t.ms if all(r.predicted is not None for r in rows) else None,
        basis,
        source,
        missing,
        chart,
    )
    if chart is not None:
        _chart(report, graph.name, chart)
    return report


def measured_layers(
    graph: Graph,
    layer_counts: Sequence[int],
    unit: str,
    target: str,
    results: Path,
    chart: Path | None,
) -> LayerReport:
    """run --layers: each layer's count, its milliseconds and the latency model's prediction."""
    pred, fitted, source = _predictor(results, target, unit)
    rows = layer_profile(graph, layer_counts, predict=pred.predict)
    cycles = CycleModel.from_results(results)
    t = timing(graph, list(layer_counts), unit, cycles)
    predicted = timing(graph, [r.predicted for r in rows], unit, cycles)
    report = LayerReport(
        rows,
        unit,
        True,
        t.layer_ms,
        ms_of(t.layer_ms),
        t.basis,
        source,
        fitted.missing(graph),
        chart,
        predicted.layer_ms,
    )
    if chart is not None:
        _chart(report, graph.name, chart)
    return report


def _round(ms: float | None) -> float | None:
    return None if ms is None else round(ms, 4)


def ms_of(values: Sequence[float | None]) -> float | None:
    return None if any(v is None for v in values) else sum(v or 0.0 for v in values)


def _chart(report: LayerReport, title: str, path: Path) -> None:
    """One bar per layer: its milliseconds at 216 MHz (0 where there is no figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6, len(report.rows) * 0.35), 4))
    values = [ms or 0.0 for ms in report.layer_ms]
    ax.bar(range(len(values)), values, color="tab:blue")
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels([f"{r.layer} {r.name}" for r in report.rows], rotation=90, fontsize=6)
    ax.set_ylabel(f"ms at {CLOCK_HZ / 1e6:g} MHz")
    kind = "measured" if report.measured else "predicted"
    ax.set_title(f"{title}: {kind} per layer ({report.ms_basis})", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _n(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def table(report: LayerReport) -> Table:
    """The rich table, its total row last."""
    unit = report.unit
    if report.measured:
        kind = f"count = {unit}, predicted by the latency model (error vs the count)"
        tail: tuple[str, ...] = ("count", "ms", "share", "MAC/cnt", "predicted", "pred ms")
        tail += ("error",)
    else:
        kind = f"predicted {unit} (latency model), live = arena in use (* the peak)"
        tail = ("flash", "scratch", "live", "predicted", "ms")
    grid = Table(
        title=f"per layer: {kind}, ms at {CLOCK_HZ / 1e6:g} MHz, MACs dense (pruned ones "
        "included), weights dense or block-sparse B<size> <pruned>",
        box=None,
    )
    for name in ("#", "layer", "op", "output", "weights", "MACs", *tail):
        left = name in ("layer", "op", "output", "weights")
        grid.add_column(name, justify="left" if left else "right", no_wrap=True)
    peak = max((r.live_bytes for r in report.rows), default=0)
    predicted_ms = report.predicted_ms or [None] * len(report.rows)
    for r, ms, p_ms in zip(report.rows, report.layer_ms, predicted_ms, strict=True):
        cells: tuple[str, ...]
        if report.measured:
            error = (
                f"{(r.predicted - r.count) / r.count:+.1%}"
                if r.predicted is not None and r.count
                else ""
            )
            per = f"{r.macs_per_count:.2f}" if r.macs_per_count else ""
            share = "" if r.share is None else f"{r.share:.1%}"
            cells = (_n(r.count), _ms(ms), share, per, _n(r.predicted), _ms(p_ms), error)
        else:
            live = f"{r.live_bytes:,}" + ("*" if r.live_bytes == peak else " ")
            cells = (f"{r.flash_bytes:,}", f"{r.scratch_bytes:,}", live, _n(r.predicted), _ms(ms))
        head = (str(r.layer), escape(r.name), r.op, r.output, r.weights, _n(r.macs or None))
        grid.add_row(*head, *cells)
    predicted = [r.predicted for r in report.rows]
    all_predicted = None if None in predicted else sum(p or 0 for p in predicted)
    macs = sum(r.macs for r in report.rows)
    total: tuple[str, ...]
    if report.measured:
        count = sum(r.count or 0 for r in report.rows)
        error = (
            f"{(all_predicted - count) / count:+.1%}" if all_predicted is not None and count else ""
        )
        per = f"{macs / count:.2f}" if macs and count else ""
        p_total = _ms(ms_of(predicted_ms))
        total = (_n(count), _ms(report.total_ms), "100.0%", per, _n(all_predicted), p_total, error)
    else:
        flash = sum(r.flash_bytes for r in report.rows)
        total = (f"{flash:,}", "", "", _n(all_predicted), _ms(report.total_ms))
    grid.add_section()
    grid.add_row("", "total", "", "", "", _n(macs or None), *total)
    return grid


def notes(report: LayerReport) -> list[str]:
    """The lines under the table: how ms were obtained, where predictions come from, what
    has none and why, and the chart."""
    lines = [f"ms: {report.ms_basis}", f"predictions: {report.predicted_from}"]
    if report.missing:
        lines.append(
            "no prediction for "
            + ", ".join(report.missing)
            + ": no measurements of these op kinds yet (a search, `tinyformer bench latency` "
            "or `tinyformer run --record` of a model holding them adds some)"
        )
    if report.chart is not None:
        lines.append(f"latency chart: {report.chart}")
    return lines
