"""Kernel benchmarks on a target: instructions (or cycles) per layer shape and sparsity.

Each case is compiled as a one-layer model, run once, and the layer's own count is taken
from the firmware's per-layer counters. Results go to ``results/kernels.csv`` atomically.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinyformer.engine import ir
from tinyformer.engine.demo import demo_graph, demo_input, macs
from tinyformer.hil.deploy import compile_model, firmware_in
from tinyformer.hil.firmware import build_id
from tinyformer.hil.measure import measure
from tinyformer.hil.results import now_iso, write_atomic
from tinyformer.hil.targets.base import Target

# (tokens, in, out): the transformer MLP shape of DESIGN.md's baseline, a classifier head,
# and a large linear.
LINEAR_SHAPES = [(64, 96, 192), (1, 256, 64), (64, 384, 96)]
# CMSIS-NN v19.1 under the same QEMU (DESIGN.md), instructions.
CMSIS_NN = {(64, 96, 192): 2_826_880, (1, 256, 64): 34_000}


@dataclass(frozen=True)
class KernelCase:
    kind: str
    shape: tuple[int, ...]
    sparsity: float = 0.0
    block: int = 0  # 0 = dense storage


def run_case(target: Target, case: KernelCase, workdir: Path) -> dict:
    graph = demo_graph(0, *case.shape)
    path = ir.save(graph, workdir / "m.tfir")
    compile_model(path, workdir / "out", board=target.board)
    fw, graph = firmware_in(workdir / "out", target.board)
    m = measure(target, fw, demo_input(graph).tobytes())
    n_macs = macs(graph)
    count = m.layer_counts[0]
    return {
        "kind": case.kind,
        "shape": "x".join(map(str, case.shape)),
        "storage": "dense" if case.block == 0 else f"block{case.block}",
        "sparsity": case.sparsity,
        "count": count,
        "unit": m.count_unit,
        "source": m.source,
        "macs": n_macs,
        "macs_per_count": round(n_macs / count, 4),
        "flash_bytes": m.flash_bytes,
        "cmsis_nn_count": CMSIS_NN.get(case.shape, float("nan")),
    }


def bench_kernels(target: Target, out: Path) -> pd.DataFrame:
    rows = []
    cases = [KernelCase("linear", s) for s in LINEAR_SHAPES]
    for case in cases:
        with tempfile.TemporaryDirectory() as tmp:
            rows.append(run_case(target, case, Path(tmp)))
    table = pd.DataFrame(rows)
    table["speedup_vs_cmsis_nn"] = (table["cmsis_nn_count"] / table["count"]).round(3)
    table["target"], table["git_rev"], table["time"] = target.name, build_id(), now_iso()
    write_atomic(table, out)
    return table
