"""Whole-model benchmark: `tinyformer bench models` -> ``results/models.csv`` and a plot.

Each model is compiled through the whole compile path, run once on the target with a
seeded input and compared bit for bit with the numpy reference. Per model one row:
instructions (or cycles) per inference, dense MACs and MACs per counted unit, the speed-up
over the dense member of its family (the same network before pruning), each op group's share
of the count, flash and peak SRAM against the board's budget, the planner's predicted peak
SRAM against the measured one, and whether the output was bit-exact. A model the budget
refuses (at the build) gets a row with ``fits = False`` and the one-line reason.

The models come in as ``BenchModel`` (name, graph, family, sparsity), so any list of graphs
(CIFAR subnets from ``nas.model_zoo``, imported .tflite models) can be benchmarked: a model
with no dense member in its family has no speed-up. Every run's per-layer counts also join
the latency samples (``results/latency_samples.csv``), so the latency model learns these
shapes, and ``results/latency_at_scale.csv`` holds the latency model's error on them: each
group of models held out in turn, predicted by a fit on all other samples
(``perf.calibrate.check_held_out``).

Rows are keyed by (target, unit, firmware id, model): a repeat with the same firmware
replaces its row, a new firmware adds rows beside the old ones (the plot and the speed-ups
use the current firmware's).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from tinyformer.boards import BOARDS
from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.compiler.errors import DoesNotFitError
from tinyformer.compiler.source_hash import firmware_id
from tinyformer.engine import ir, reference
from tinyformer.engine.ir import Graph
from tinyformer.engine.work import graph_macs
from tinyformer.hil.errors import HilError
from tinyformer.hil.measure import measure
from tinyformer.hil.targets.base import Target
from tinyformer.perf.calibrate import check_held_out
from tinyformer.perf.latency import SampleStore, samples_of
from tinyformer.results import append_rows, now_iso, read_table, write_atomic

MODELS = "models.csv"
MODELS_PLOT = "models.png"
HELD_OUT = "latency_at_scale.csv"
CAPS = "models_caps.csv"  # what caps the speed-up at 90 %, per family and op group
# Op groups of the share columns; whatever else runs (LUT activations, pooling, reshapes,
# transposes) is "other".
OP_GROUPS = {
    "depthwise": ("depthwise_conv2d",),
    "conv": ("conv2d",),
    "linear": ("linear",),
    "attention": ("matmul_qk", "matmul_av"),
    "softmax": ("softmax",),
    "layernorm": ("layernorm",),
    "add": ("add",),
}
GROUPS = (*OP_GROUPS, "other")
# The groups block sparsity can speed up; the rest bound the speed-up (Amdahl).
PRUNABLE = ("conv", "linear")
# Targets of the benchmark (issue 14), reported, never asserted by tests.
TARGET_DENSE_MACS_PER_INSTR = 1.0
TARGET_SPEEDUP_AT_90 = 3.0

KEY = ["target", "unit", "firmware", "model"]
COLUMNS = [
    "model", "family", "group", "sparsity", "fits", "refused", "count", "unit", "macs",
    "macs_per_count", "speedup_vs_dense", "unprunable_count", "amdahl_bound",
    *(f"share_{g}" for g in GROUPS),
    "flash_bytes", "flash_budget", "flash_pct", "peak_sram_bytes", "predicted_sram_bytes",
    "sram_error_pct", "ram_budget", "sram_pct", "bit_exact", "params", "layers",
    "target", "firmware", "time",
]  # fmt: skip


@dataclass(frozen=True)
class BenchModel:
    """A model to benchmark; ``family`` names the network it is a (pruned) member of,
    ``group`` the models the latency check holds out together (default: the family)."""

    name: str
    graph: Graph
    family: str = ""
    sparsity: float = 0.0
    group: str = ""

    @classmethod
    def of(cls, name: str, graph: Graph) -> BenchModel:
        """A model from elsewhere (an imported .tflite): its own family, dense."""
        return cls(name, graph, name, 0.0, name)


def op_group(op: str) -> str:
    return next((g for g, ops in OP_GROUPS.items() if op in ops), "other")


def group_counts(graph: Graph, layer_counts: Sequence[int]) -> dict[str, int]:
    """The count of each op group in one run."""
    counts = dict.fromkeys(GROUPS, 0)
    for node, count in zip(graph.nodes, layer_counts, strict=True):
        counts[op_group(node.op)] += int(count)
    return counts


def _params(graph: Graph) -> int:
    """Weights of the network (dense elements, whatever their storage)."""
    return sum(
        int(np.prod(t.shape)) for t in graph.tensors.values() if t.is_constant and t.dtype == "int8"
    )


def run_model(target: Target, model: BenchModel, workdir: Path) -> tuple[dict, list[dict]]:
    """One row of the table, and the run's latency samples (none when refused)."""
    graph, board = model.graph, BOARDS[target.board]
    row: dict = {
        "model": model.name, "family": model.family or model.name,
        "group": model.group or model.family or model.name, "sparsity": model.sparsity,
        "macs": graph_macs(graph), "params": _params(graph), "layers": len(graph.nodes),
        "flash_budget": board.flash_bytes, "ram_budget": board.ram_bytes,
    }  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        report = compile_model(ir.save(graph, workdir / "model.tfir"), workdir / "out", board.name)
    except (DoesNotFitError, ValueError) as exc:  # over a budget: at the link, or the stack
        return {**row, "fits": False, "refused": str(exc).splitlines()[0]}, []
    fw, graph = firmware_in(workdir / "out", board.name)
    x = np.random.default_rng(0).integers(-128, 128, graph.tensors[graph.inputs[0]].shape)
    x = x.astype(np.int8)
    m = measure(target, fw, x.tobytes())
    groups = group_counts(graph, m.layer_counts)
    unprunable = sum(v for g, v in groups.items() if g not in PRUNABLE)
    row.update(
        fits=True,
        refused="",
        count=m.total,
        unit=m.count_unit,
        macs_per_count=round(row["macs"] / m.total, 4),
        unprunable_count=unprunable,
        **{f"share_{g}": round(v / m.total, 4) for g, v in groups.items()},
        flash_bytes=m.flash_bytes,
        flash_pct=round(100 * m.flash_bytes / board.flash_bytes, 2),
        peak_sram_bytes=m.peak_sram_bytes,
        predicted_sram_bytes=report.predicted_peak_sram_bytes,
        sram_error_pct=round(
            100 * (report.predicted_peak_sram_bytes - m.peak_sram_bytes) / m.peak_sram_bytes, 3
        ),
        sram_pct=round(100 * m.peak_sram_bytes / board.ram_bytes, 2),
        bit_exact=m.output == reference.outputs(graph, x).tobytes(),
    )
    return row, samples_of(graph, m.layer_counts, target.name, m.count_unit, model.name)


def _per_family(table: pd.DataFrame) -> pd.DataFrame:
    """speedup_vs_dense, and amdahl_bound (the speed-up left if conv and linear layers cost
    nothing), from each family's dense member measured with the same firmware."""
    table = table.copy()
    dense = table[(table["sparsity"] == 0) & table["fits"].astype(bool)]
    ref = dense.set_index(["target", "unit", "firmware", "family"])["count"]
    keys = pd.MultiIndex.from_frame(table[["target", "unit", "firmware", "family"]])
    base = pd.Series(ref.reindex(keys).to_numpy(), index=table.index)
    table["speedup_vs_dense"] = (base / table["count"]).round(3)
    table["amdahl_bound"] = (base / table["unprunable_count"]).round(3)
    return table


def bench_models(
    target: Target,
    models: Iterable[BenchModel],
    results: Path,
    progress: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """Run every model; write ``models.csv`` and ``models.png``; return this run's rows.

    Rows are stored as each model is measured (an interrupted bench keeps what it ran).
    Raises HilError after writing when any output differed from the reference.
    """
    results = Path(results)
    store, fw, rows = SampleStore(results), firmware_id(), []
    with tempfile.TemporaryDirectory() as tmp:
        for i, model in enumerate(models):
            row, samples = run_model(target, model, Path(tmp) / str(i))
            row.update(target=target.name, firmware=fw, time=now_iso())
            row.setdefault("unit", BOARDS[target.board].count_unit)
            rows.append(row)
            if samples:
                store.add(samples)
            _store(results / MODELS, [row])
            if progress:
                fit = f"{row['count']:,} {row['unit']}" if row["fits"] else row["refused"]
                progress(f"{model.name}: {fit}")
    table = _per_family(read_table(results / MODELS, COLUMNS, KEY))
    _store(results / MODELS, table.to_dict("records"))
    current = table[(table["firmware"] == fw) & (table["target"] == target.name)]
    plot_models(current, results / MODELS_PLOT)
    write_atomic(speedup_caps(current), results / CAPS)
    ran = current[current["fits"].astype(bool)]
    if len(ran):
        held = check_held_out(
            store.load(),
            dict(zip(ran["model"], pd.to_numeric(ran["count"]), strict=True)),
            dict(zip(ran["model"], ran["group"], strict=True)),
            target.name,
            str(ran["unit"].iloc[0]),
        )
        write_atomic(held, results / HELD_OUT)
    mine = table[table["model"].isin([r["model"] for r in rows]) & (table["firmware"] == fw)]
    wrong = mine[mine["fits"].astype(bool) & ~mine["bit_exact"].astype(bool)]
    if len(wrong):
        raise HilError(f"not bit-exact: {', '.join(wrong['model'])} (see {results / MODELS})")
    return mine.reset_index(drop=True)


def speedup_caps(table: pd.DataFrame, sparsity: float = 0.9) -> pd.DataFrame:
    """What caps each family's speed-up at ``sparsity``: per op group, its count dense and
    sparse, its own speed-up, and the model's speed-up were that group free in the sparse
    model (``speedup_if_free``, Amdahl: the highest caps it most) or free in both, as a
    much faster kernel would make it (``speedup_without``)."""
    ran = table[table["fits"].astype(bool)]
    key = ["target", "unit", "firmware", "family"]
    rows = []
    for k, fam in ran.groupby(key):
        dense, sparse = fam[fam["sparsity"] == 0], fam[fam["sparsity"] == sparsity]
        if dense.empty or sparse.empty:
            continue
        d, sp = dense.iloc[0], sparse.iloc[0]
        d_total, s_total = float(d["count"]), float(sp["count"])
        for g in GROUPS:
            dc, sc = d_total * float(d[f"share_{g}"]), s_total * float(sp[f"share_{g}"])
            rows.append({
                **dict(zip(key, k, strict=True)), "sparsity": sparsity, "op_group": g,
                "dense_count": round(dc), "sparse_count": round(sc),
                "group_speedup": round(dc / sc, 3) if sc else None,
                "share_of_sparse": round(sc / s_total, 4),
                "model_speedup": round(d_total / s_total, 3),
                "speedup_if_free": round(d_total / (s_total - sc), 3),
                "speedup_without": round((d_total - dc) / (s_total - sc), 3),
            })  # fmt: skip
    return pd.DataFrame(rows)


def _store(path: Path, rows: list[dict]) -> None:
    frame = pd.DataFrame(rows).reindex(columns=COLUMNS)
    # a refused model has no measurement: its measured columns stay empty, not zero
    append_rows(
        frame.astype(object).where(frame.notna(), "").to_dict("records"), path, COLUMNS, KEY
    )


def plot_models(table: pd.DataFrame, path: Path) -> None:
    """Stacked op-group counts per model (left) and each family's speed-up vs sparsity."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ran = table[table["fits"].astype(bool)].sort_values(["family", "sparsity"])
    if ran.empty:
        return
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(max(16, 0.2 * len(ran)), 6), width_ratios=(3, 1))
    bottom = np.zeros(len(ran))
    labels = [f"{f} {s:.0%}" for f, s in zip(ran["family"], ran["sparsity"], strict=True)]
    counts = pd.to_numeric(ran["count"]).to_numpy() / 1e6
    for g in GROUPS:
        part = counts * pd.to_numeric(ran[f"share_{g}"]).to_numpy()
        ax.bar(range(len(ran)), part, bottom=bottom, label=g)
        bottom += part
    ax.set_xticks(range(len(ran)), labels, rotation=90, fontsize=6)
    ax.set_ylabel(f"M {ran['unit'].iloc[0]} per inference")
    ax.legend(fontsize=7, loc="upper right")
    for _, rows in ran.groupby("family"):
        ax2.plot(rows["sparsity"], pd.to_numeric(rows["speedup_vs_dense"]), marker="o", lw=0.8)
    ax2.axhline(TARGET_SPEEDUP_AT_90, color="k", ls="--", lw=0.8, label="target at 90 %")
    ax2.set_xlabel("block sparsity")
    ax2.set_ylabel("speed-up over the same model dense")
    ax2.legend(fontsize=7)
    fig.suptitle(f"whole models on {ran['target'].iloc[0]}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


__all__ = ["BenchModel", "bench_models", "group_counts", "plot_models", "speedup_caps"]
