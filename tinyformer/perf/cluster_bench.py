"""`tinyformer bench cluster` and `bench farm`: how measuring scales with targets.

cluster: one evaluation (a conv + transformer hybrid, random images) on 1 and then 2 emulator
workers of the Ray cluster, in the same run: images per second and the speed-up.

farm: past this machine, a simulated farm of 1 to 64 targets. Fake targets replay counts that
a search recorded (``latency_search.csv``) with a realistic delay per measurement (a session:
boot, handshake, input; then the count at the target's counts per second), many per process
(an async actor holds up to 16), and take the search's real jobs (a compiled firmware package
each) through the pool's real dispatch. Candidates measured per hour against the ideal
(targets x 3600 / delay) shows where the driver or Ray's scheduling becomes the bottleneck.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import ray

from tinyformer.cluster.evaluate import evaluate_sharded
from tinyformer.cluster.pool import FirmwarePackage, dispatch
from tinyformer.compiler.driver import compile_model
from tinyformer.engine import ir
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.hil.errors import HilError
from tinyformer.hil.targets.base import Target
from tinyformer.results import now_iso, write_atomic

CLUSTER_BENCH = "cluster.csv"
FARM_BENCH = "farm.csv"
FARM_PLOT = "farm.png"
FARM_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256)  # past 64: where it bends
PER_PROCESS = 16  # fake targets one actor process serves at once
SESSION_S = 1.0  # one QEMU measurement besides the run: boot, handshake, INFO, input, read-back
COUNTS_PER_S = 20e6  # QEMU's pessimistic rate (QemuTarget.counts_per_second)


def _package(folder: Path, board: str) -> FirmwarePackage:
    ir.save(random_hybrid_graph(seed=0), folder / "model.tfir")
    compile_model(folder / "model.tfir", folder / "fw", board=board)
    return FirmwarePackage.of(folder / "fw")


def bench_cluster(target: Target, results: Path, images: int = 120) -> pd.DataFrame:
    """Evaluate ``images`` on 1, then 2 workers of ``target``'s kind; results/cluster.csv."""
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="tinyformer-cluster-bench-") as tmp:
        package = _package(Path(tmp), target.board)
        graph = ir.load(Path(tmp) / "fw" / "model.tfir")
        x = rng.integers(-128, 128, (images, *graph.tensors[graph.inputs[0]].shape), np.int8)
        labels = rng.integers(0, 10, images)
        rows = []
        for workers in (1, 2):
            start = time.perf_counter()
            run = evaluate_sharded(target, package, x, labels, workers)
            seconds = time.perf_counter() - start
            if len(run.targets) != workers:
                raise HilError(f"{workers} workers asked, the cluster had {len(run.targets)}")
            if run.accuracy.bit_exact < 1.0:
                raise HilError("a shard's outputs differ from the numpy reference")
            rows.append(
                {
                    "workers": workers,
                    "images": images,
                    "seconds": round(seconds, 2),
                    "images_per_s": round(images / seconds, 2),
                    "bit_exact": run.accuracy.bit_exact,
                    "target": target.name,
                }
            )
    table = pd.DataFrame(rows)
    table["speedup"] = (table["images_per_s"] / table["images_per_s"].iloc[0]).round(3)
    table["time"] = now_iso()
    write_atomic(table, Path(results) / CLUSTER_BENCH)
    return table


class FakeTargets:
    """Up to PER_PROCESS fake targets in one process: each job sleeps a measurement's delay
    and replays a recorded count."""

    def __init__(self, counts: list[float], session_s: float, counts_per_s: float) -> None:
        self.counts, self.session_s, self.cps = counts, session_s, counts_per_s
        self.jobs = 0

    async def measure(self, package: FirmwarePackage, index: int) -> tuple[float, str]:
        count = self.counts[index % len(self.counts)]
        await asyncio.sleep(self.session_s + count / self.cps)
        self.jobs += 1
        return count, "fake"


def _recorded_counts(results: Path) -> list[float]:
    path = Path(results) / "latency_search.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path}: the farm replays a search's counts; run a search first")
    counts = pd.read_csv(path)["measured"].dropna()
    if counts.empty:
        raise ValueError(f"{path} holds no measured count to replay")
    return [float(c) for c in counts]


def bench_farm(
    results: Path,
    sizes: tuple[int, ...] = FARM_SIZES,
    rounds: int = 4,
    session_s: float = SESSION_S,
) -> pd.DataFrame:
    """Candidates per hour with 1..64 simulated targets; results/farm.csv and farm.png."""
    counts = _recorded_counts(results)
    delay = session_s + float(np.mean(counts)) / COUNTS_PER_S
    rows = []
    with tempfile.TemporaryDirectory(prefix="tinyformer-farm-") as tmp:
        package = _package(Path(tmp), "mps2-an500")  # what each job carries, as a search's
        for n in sizes:
            hosts: list[Any] = [
                ray.remote(FakeTargets)
                .options(num_cpus=0, max_concurrency=PER_PROCESS)
                .remote(counts, session_s, COUNTS_PER_S)
                for _ in range(-(-n // PER_PROCESS))
            ]
            ray.get([h.__ray_ready__.remote() for h in hosts])
            slots = [hosts[i // PER_PROCESS] for i in range(n)]
            jobs = [(package, i) for i in range(rounds * n)]
            handed: list[int] = []
            start = time.perf_counter()
            dispatch(slots, "measure", jobs, lambda i, *_, h=handed: h.append(i), "fake")
            seconds = time.perf_counter() - start
            for h in hosts:
                ray.kill(h)
            if handed != list(range(len(jobs))):
                raise RuntimeError("the dispatch lost, repeated or reordered a measurement")
            rows.append(
                {
                    "targets": n,
                    "processes": len(hosts),
                    "candidates": len(jobs),
                    "seconds": round(seconds, 2),
                    "candidates_per_hour": round(len(jobs) / seconds * 3600),
                    "ideal_per_hour": round(n * 3600 / delay),
                    "delay_s": round(delay, 3),
                }
            )
    table = pd.DataFrame(rows)
    table["efficiency"] = (table["candidates_per_hour"] / table["ideal_per_hour"]).round(3)
    table["time"] = now_iso()
    write_atomic(table, Path(results) / FARM_BENCH)
    _plot(table, Path(results))
    return table


def _plot(farm: pd.DataFrame, results: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = results / CLUSTER_BENCH
    panels = 2 if measured.exists() else 1
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4), squeeze=False)
    ax = axes[0][0]
    ax.loglog(farm["targets"], farm["candidates_per_hour"], "o-", label="simulated")
    ax.loglog(farm["targets"], farm["ideal_per_hour"], "k--", label="ideal (targets / delay)")
    ax.set_xlabel("targets")
    ax.set_ylabel("candidates measured per hour")
    ax.set_title(f"simulated farm ({farm['delay_s'].iloc[0]} s per measurement)")
    ax.legend(fontsize=8)
    if panels == 2:
        table: Any = pd.read_csv(measured)
        bx = axes[0][1]
        bx.bar(table["workers"].astype(str), table["images_per_s"])
        bx.set_xlabel("QEMU workers (this machine, 2 cores)")
        bx.set_ylabel("images per second (evaluate)")
        bx.set_title(f"evaluate: {table['speedup'].iloc[-1]:.2f}x with 2 workers")
    fig.tight_layout()
    fig.savefig(results / FARM_PLOT, dpi=110)
    plt.close(fig)
