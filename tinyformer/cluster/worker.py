"""``tinyformer worker``: this host joins a Ray cluster with its targets, until stopped.

It starts a Ray node here (``ray start --block``, a child process) holding the targets as
resources: ``qemu`` for N emulator cores, or ``board:<board>`` for each attached board, whose
worker actor (port and probe of that board) is started on this node under a name the pools
find. Ctrl-C (or SIGTERM) takes the host out: its actors and its node stop.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tinyformer.cluster.pool import Worker, board_actor_name, resource_of
from tinyformer.cluster.runtime import NAMESPACE, QEMU, ClusterError, ray_session
from tinyformer.cluster.tasks import result
from tinyformer.hil.targets.base import Target
from tinyformer.hil.targets.emulator import describe_log, spawn
from tinyformer.hil.targets.emulator import stop as stop_process

JOIN_TIMEOUT = 60.0


def _node_command(address: str, cpus: int, resources: dict[str, float]) -> list[str]:
    ray_cli = Path(sys.executable).with_name("ray")
    return [
        str(ray_cli), "start", "--address", address, "--num-cpus", str(cpus),
        "--resources", json.dumps(resources), "--disable-usage-stats", "--block",
    ]  # fmt: skip


def _wait_for_node(marker: str, node: subprocess.Popen[bytes], node_log: BinaryIO) -> str:
    """The id of the node holding the resource ``marker``, once the cluster lists it."""
    deadline = time.monotonic() + JOIN_TIMEOUT
    while time.monotonic() < deadline:
        for n in ray.nodes():
            if n["Alive"] and marker in n["Resources"]:
                return str(n["NodeID"])
        if node.poll() is not None:
            break
        time.sleep(0.2)
    said = describe_log(node_log).splitlines()[-1:]
    raise ClusterError(f"this host's Ray node did not join the cluster: {' '.join(said)}")


def serve(
    address: str,
    targets: list[Target],
    cpus: int,
    emulators: int,
    log: Callable[[str], None] = print,
) -> None:
    """Join the cluster at ``address`` with ``targets`` (boards) or ``emulators`` qemu cores;
    serve until interrupted."""
    marker = f"tinyformer-host-{uuid.uuid4().hex[:12]}"  # finds this node among the cluster's
    resources: dict[str, float] = {marker: 1}
    for t in targets:
        resources[resource_of(t)] = resources.get(resource_of(t), 0) + 1
    if emulators:
        resources[QEMU] = emulators
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    with tempfile.TemporaryFile() as node_log:
        # its own session (Ctrl-C reaches us, we stop the node), and it dies with this process
        command = _node_command(address, cpus, resources)
        node = spawn(command, stdout=node_log, stderr=subprocess.STDOUT, env=env)
        try:
            with ray_session(address):
                for sig in (signal.SIGTERM, signal.SIGINT):  # after ray.init, which sets its own
                    signal.signal(sig, stop)
                node_id = _wait_for_node(marker, node, node_log)
                _start_boards(targets, node_id, log)
                if emulators:
                    log(f"serving {emulators} emulator core(s) as resource {QEMU!r}")
                log(f"joined {address} as node {node_id[:8]}; Ctrl-C to leave")
                while not stopping and node.poll() is None:
                    time.sleep(0.5)
                if node.poll() is not None and not stopping:
                    said = describe_log(node_log)[-300:]
                    raise ClusterError(f"this host's Ray node stopped: {said}")
        finally:
            stop_process(node)


_actors: list[Any] = []  # the board workers live as long as this process holds them


def _start_boards(targets: list[Target], node_id: str, log: Callable[[str], None]) -> None:
    """A named worker actor per board, on this host's node."""
    here = NodeAffinitySchedulingStrategy(node_id, soft=False)
    for t in targets:
        name = board_actor_name(t.board, getattr(t, "port", t.name))
        actor: Any = Worker.options(
            name=name,
            namespace=NAMESPACE,
            num_cpus=0,
            resources={resource_of(t): 1},
            scheduling_strategy=here,
        ).remote(t)
        _actors.append(actor)
        log(f"serving {result(actor.identity.remote())} as {name}")
