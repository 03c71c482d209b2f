"""The execution layer on a real multi-node Ray cluster (hil/conftest.py's ``ray_cluster``).

A search and an evaluation spread over both nodes; a node killed while its emulator measures
leaves a search that ends as the undisturbed one; a board host joins with `tinyformer worker`
and its board is found by the pool.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray
from driver import CountedFitness, settings
from test_resume import _outcome

from tinyformer.cluster.evaluate import evaluate_sharded
from tinyformer.cluster.pool import FirmwarePackage, TargetPool
from tinyformer.cluster.runtime import QEMU
from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.engine import ir
from tinyformer.hil.accuracy import evaluate_on_target
from tinyformer.hil.errors import TargetUnavailable
from tinyformer.hil.targets.board import BoardTarget
from tinyformer.nas.search import SparseNAS

SEARCH = replace(settings(1), population=3, top_k=3)  # three candidates, all measured


def _nodes() -> set[str]:
    return {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def _search(target: Any, root: Path, built: Path | None = None) -> tuple[Any, Any, Any]:
    """The search in ``root``; ``built``: an earlier one's candidate folders, so that their
    firmware builds are up to date (the search compiles them again, quickly)."""
    if built is not None:
        shutil.copytree(built, root / "out" / "candidates")
    fit = CountedFitness(root / "calls.txt")
    state = SparseNAS(SEARCH, fit, target, root / "out", root / "results").run()
    return _outcome(root / "out", root / "results"), state, fit


@pytest.fixture(scope="module")
def undisturbed(ray_cluster: Any, target: Any, tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("undisturbed")
    return (*_search(target, root), root / "out" / "candidates")


def test_a_search_spreads_over_both_nodes(ray_cluster: Any, undisturbed) -> None:
    outcome, state, fit, _ = undisturbed
    gpu_node = next(n["NodeID"] for n in ray.nodes() if n["Resources"].get("GPU"))
    # candidate accuracy asks for a GPU where the cluster has one: all of it ran there
    assert sorted(fit.calls()) == sorted(state.evaluated) and fit.nodes() == {gpu_node}
    # the three measurements went to the two emulator workers, on both nodes
    where = [e.measured_on for e in state.evaluated.values()]
    assert all(where) and len(where) == 3
    assert {w.split("node ")[1].rstrip(")") for w in where} == {n[:8] for n in _nodes()}
    assert outcome["samples"]


def _qemu_of(raylet_pid: int) -> bool:
    """Whether a QEMU runs under a worker of the raylet ``raylet_pid`` (the node measures)."""
    for entry in os.listdir("/proc"):
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"qemu-system-arm" not in cmd:
            continue
        worker = int(stat.rsplit(")", 1)[1].split()[1])  # its parent: the worker process
        try:
            parent = int(Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if parent == raylet_pid:
            return True
    return False


def test_a_node_killed_while_measuring_changes_nothing(
    ray_cluster: Any, target: Any, undisturbed, tmp_path: Path
) -> None:
    from ray._private import ray_constants

    doomed = ray_cluster.add_node(num_cpus=0, resources={QEMU: 1})
    ray_cluster.wait_for_nodes()
    raylet = doomed.all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    killed = threading.Event()

    def kill_while_measuring() -> None:
        deadline = time.monotonic() + 240
        while not _qemu_of(raylet) and time.monotonic() < deadline:
            time.sleep(0.02)
        if time.monotonic() < deadline:
            ray_cluster.remove_node(doomed, allow_graceful=False)
            killed.set()

    killer = threading.Thread(target=kill_while_measuring, daemon=True)
    killer.start()
    outcome, state, _ = _search(target, tmp_path, built=undisturbed[3])
    killer.join(timeout=5)
    assert killed.is_set(), "the third node never measured"
    assert doomed.node_id not in _nodes()
    # its measurement ran again on another node: the same search, each sample once
    assert outcome == undisturbed[0]
    assert not any(doomed.node_id[:8] in (e.measured_on or "") for e in state.evaluated.values())


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tinyformer.engine.demo import demo_graph

    root = tmp_path_factory.mktemp("compiled")
    compile_model(ir.save(demo_graph(3, 8, 40, 24), root / "m.tfir"), root / "fw")
    return root / "fw"


def test_an_evaluation_is_sharded_over_both_nodes(
    ray_cluster: Any, target: Any, compiled: Path
) -> None:
    fw, graph = firmware_in(compiled, target.board)
    rng = np.random.default_rng(1)
    images = rng.integers(-128, 128, (25, *graph.tensors[graph.inputs[0]].shape), np.int8)
    labels = rng.integers(0, 24, 25)
    run = evaluate_sharded(target, FirmwarePackage.of(compiled), images, labels)
    assert [s.first for s in run.shards] == [0, 6, 12, 19]  # 2 per target, in order
    assert all(s.bit_exact == s.images for s in run.shards)
    assert {t.split("node ")[1].rstrip(")") for t in run.targets} == {n[:8] for n in _nodes()}
    # merged in order, the figures of one session over every image
    assert run.accuracy == evaluate_on_target(target, fw, graph, images, labels)


def test_a_board_host_joins_with_tinyformer_worker(
    ray_cluster: Any, compiled: Path, tmp_path: Path
) -> None:
    """The stand-in for a lab host: the command is real, the board is a port with nothing
    behind it, so its measurement is refused as a missing board would be, in one line."""
    # firmware that says it is for the board (the port is opened before it would be flashed)
    package = FirmwarePackage.of(compiled)
    report = json.loads(package.files["compile.json"])
    package.files["compile.json"] = json.dumps({**report, "board": "stm32f746"}).encode()
    port = str(tmp_path / "ttyACM-absent")
    cmd = [sys.executable, "-m", "tinyformer.cli", "worker", "--target", "board", "--port", port,
           "--probe", "0670FF", "--ray", ray_cluster.address]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline() for _ in range(2)]
        assert "serving BoardTarget(port=" in lines[0] and "0670FF" in lines[0], lines
        with TargetPool(BoardTarget()) as pool:
            assert len(pool) == 1 and port in next(iter(pool.workers.values()))
            with pytest.raises(TargetUnavailable, match="cannot open serial port"):
                pool.map("measure", [(package, b"")], lambda *_: None)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    assert proc.returncode == 0
    deadline = time.monotonic() + 30
    while ray.cluster_resources().get("board:stm32f746") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not ray.cluster_resources().get("board:stm32f746")  # the host left with its node


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (["bench", "farm", "--ray", "127.0.0.1:9"], "no Ray head answers at 127.0.0.1:9"),
        (["worker", "--target", "qemu"], "worker joins a cluster: give --ray"),
    ],
)
def test_a_cluster_that_cannot_be_reached_is_one_line(args: list[str], line: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    cmd = [sys.executable, "-m", "tinyformer.cli", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 1 and line in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
