"""Imported .tflite models on a target: `tinyformer bench imported` -> imported_models.csv.

Two kinds of rows:

- ``model``: each imported model compiled and run once (a random input, its output checked
  against the numpy reference): instructions per inference, flash, peak SRAM predicted
  (compile) and measured (static RAM + stack high-water mark), arena and its lower bound,
  how many weights the cost model stored block-sparse. MLPerf Tiny's ResNet-8 shape runs
  dense and block-pruned (B = 4, blocks of smallest magnitude zeroed before quantization;
  accuracy not claimed) to 50, 75 and 90 %.
- ``rounding``: what TFLite's semantics cost per kernel: the same imported layers run with
  TFLite's double rounding (``tflite``, the kernels' generic paths) and with the engine's
  single rounding (``single``, their fast paths), counts summed per op.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.compiler.firmware import build_id
from tinyformer.engine import ir
from tinyformer.engine.graph import Graph, Tensor
from tinyformer.engine.ops.softmax import softmax_exp_table
from tinyformer.engine.reference import outputs
from tinyformer.engine.tflite_import import import_tflite_bytes
from tinyformer.hil.measure import Measurement, measure
from tinyformer.hil.targets.base import Target
from tinyformer.perf import tflite_models as zoo
from tinyformer.results import now_iso, write_atomic

IMPORTED_BENCH = "imported_models.csv"
PRUNING = (0.0, 0.5, 0.75, 0.9)

MODELS: list[tuple[str, float, Callable[[], bytes]]] = [
    *(("resnet8", p, partial(zoo.resnet8, sparsity=p)) for p in PRUNING),
    ("ds_cnn", 0.0, zoo.ds_cnn),
    ("mobilenet", 0.0, zoo.mobilenet),
    ("transformer_block", 0.0, zoo.transformer_block),
]


def single_rounding(graph: Graph) -> Graph:
    """The graph with the engine's own rounding: same integer parameters, softmax from the
    engine's table (its semantics differ from TFLite's; only the cost is compared)."""
    tensors = dict(graph.tensors)
    for node in graph.nodes:
        if node.op == "softmax":
            scale = graph.tensors[node.inputs[0]].scale
            old = tensors[node.inputs[1]]
            tensors[node.inputs[1]] = dataclasses.replace(old, data=softmax_exp_table(scale))
    meta = {**graph.meta, "rounding": "single"}
    return dataclasses.replace(graph, tensors=tensors, meta=meta)


def _run(target: Target, graph: Graph, work: Path) -> tuple[dict, Measurement, bool]:
    """Compile ``graph``, run it once on a random input: (compile report, measurement,
    output equal to the numpy reference)."""
    ir.save(graph, work / "model.tfir")
    report = compile_model(work / "model.tfir", work / "out", board=target.board)
    firmware, _ = firmware_in(work / "out", target.board)
    shape = graph.tensors[graph.inputs[0]].shape
    x = np.random.default_rng(0).integers(-128, 128, shape).astype(np.int8)
    m = measure(target, firmware, x.tobytes())
    same = m.output == outputs(graph, x).tobytes()
    return dataclasses.asdict(report), m, bool(same)


def _encoded(graph: Graph) -> int:
    return sum(1 for t in graph.tensors.values() if t.encoding)


def _per_op(graph: Graph, counts: list[int]) -> dict[str, int]:
    """Counts summed per op; a conv2d / linear on block-sparse weights counts apart."""
    out: dict[str, int] = {}
    for node, count in zip(graph.nodes, counts, strict=True):
        weights: Tensor | None = graph.tensors.get(node.inputs[1]) if len(node.inputs) > 1 else None
        op = f"sparse {node.op}" if weights is not None and weights.encoding else node.op
        out[op] = out.get(op, 0) + count
    return out


def bench_imported(target: Target, out: Path) -> pd.DataFrame:
    """Run the imported models on ``target``; write the table to ``out`` (atomically)."""
    rows: list[dict] = []
    stamp = {"target": target.name, "git_rev": build_id(), "time": now_iso()}
    rounding_of = {"resnet8": (0.0, 0.9), "ds_cnn": (0.0,), "transformer_block": (0.0,)}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, pruned, make) in enumerate(MODELS):
            graph = import_tflite_bytes(make(), name)
            report, m, same = _run(target, graph, Path(tmp) / f"m{i}")
            rows.append({
                "kind": "model", "model": name, "sparsity_pct": round(100 * pruned),
                "op": "", "rounding": "tflite", "instructions": m.total,
                "instructions_single": "", "overhead_pct": "",
                "flash_bytes": report["flash_bytes"],
                "peak_sram_predicted": report["predicted_peak_sram_bytes"],
                "peak_sram_measured": m.peak_sram_bytes,
                "arena_bytes": report["arena_bytes"],
                "arena_lower_bound": report["arena_lower_bound"],
                "sparse_weights": _encoded(graph), "layers": len(graph.nodes),
                "matches_reference": same, **stamp,
            })  # fmt: skip
            if pruned not in rounding_of.get(name, ()):
                continue
            _, single, same_single = _run(target, single_rounding(graph), Path(tmp) / f"s{i}")
            if not same_single:
                raise RuntimeError(f"{name}: the single-rounding firmware disagrees with numpy")
            tfl, eng = _per_op(graph, m.layer_counts), _per_op(graph, single.layer_counts)
            for op in sorted(tfl):
                rows.append({
                    "kind": "rounding", "model": name, "sparsity_pct": round(100 * pruned),
                    "op": op, "rounding": "tflite", "instructions": tfl[op],
                    "instructions_single": eng[op],
                    "overhead_pct": round(100 * (tfl[op] / eng[op] - 1), 1),
                    "flash_bytes": "", "peak_sram_predicted": "", "peak_sram_measured": "",
                    "arena_bytes": "", "arena_lower_bound": "", "sparse_weights": "",
                    "layers": "", "matches_reference": same_single, **stamp,
                })  # fmt: skip
    table = pd.DataFrame(rows)
    if not table["matches_reference"].all():
        raise RuntimeError("an imported model's output on the target differs from the reference")
    write_atomic(table, out)
    return table
