"""Targets as Ray resources: a worker actor per target, and a pool that keeps them busy.

An emulator worker takes one ``qemu`` resource (a core: the local node has one per core, a
node started with ``--resources '{"qemu": N}'`` N); a board worker is started on the host the
board is plugged into (``tinyformer worker --target board``) and registered under a name in
the ``tinyformer`` namespace, with its ``board:<board>`` resource. A measurement goes to a free
worker of the kind it needs and comes back with the worker's identity (target, host, node).

Firmware travels as its files (``FirmwarePackage``), so a worker on another host needs no
shared disk. When a worker's node dies mid-job, the job runs again on another worker: the pool
hands a job's result to the caller once, when it is complete, so nothing is lost or counted
twice.
"""

from __future__ import annotations

import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from tinyformer.cluster.runtime import NAMESPACE, QEMU, ClusterError, board_resource
from tinyformer.cluster.tasks import result
from tinyformer.compiler.driver import compile_report, firmware_in
from tinyformer.compiler.source_hash import firmware_id
from tinyformer.hil.accuracy import ImageRuns, run_images
from tinyformer.hil.measure import Measurement, measure
from tinyformer.hil.targets.base import Target

FILES = ("model.tfir", "compile.json", "build/firmware.elf")  # what firmware_in reads
READY_TIMEOUT = 60.0  # seconds a new worker may take to start (a loaded machine)
RELEASE_WAIT = 5.0  # seconds a new pool waits for emulator cores that a killed worker frees


@dataclass(frozen=True)
class FirmwarePackage:
    """A compiled folder's files that a target needs, as bytes: sent to any host; with the
    firmware id of the sources that built it (a host with other sources builds other code)."""

    files: dict[str, bytes]
    firmware: str

    @classmethod
    def of(cls, folder: Path) -> FirmwarePackage:
        firmware_in(folder, compile_report(folder)["board"])  # a clear error if it is not one
        files = {name: (Path(folder) / name).read_bytes() for name in FILES}
        return cls(files, firmware_id())

    def check_firmware(self) -> None:
        """Refuse firmware built from other sources than this checkout's (its counts would be
        filed under this checkout's firmware id)."""
        if self.firmware != firmware_id():
            raise ClusterError(
                f"a node built firmware {self.firmware}, this checkout's is {firmware_id()}: "
                "install the same TinyFormer on every host"
            )

    def unpack(self, folder: Path) -> Path:
        for name, data in self.files.items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        return folder


def resource_of(target: Target) -> str:
    """The Ray resource one worker of ``target``'s kind holds."""
    return board_resource(target.board) if target.name == "board" else QEMU


class TargetWorker:
    """One target (an emulator core or an attached board) as a Ray actor: one job at a time."""

    def __init__(self, target: Target) -> None:
        self.target = target
        ctx = ray.get_runtime_context()
        actor, node = ctx.get_actor_id() or "", ctx.get_node_id()
        self.where = f"{target!r} {actor[:8]} on {socket.gethostname()} (node {node[:8]})"

    def identity(self) -> str:
        return self.where

    def measure(self, package: FirmwarePackage, input_data: bytes) -> tuple[Measurement, str]:
        with tempfile.TemporaryDirectory(prefix="tinyformer-worker-") as tmp:
            fw, _ = firmware_in(package.unpack(Path(tmp)), self.target.board)
            return measure(self.target, fw, input_data), self.where

    def run_images(self, package: FirmwarePackage, inputs: np.ndarray) -> tuple[ImageRuns, str]:
        with tempfile.TemporaryDirectory(prefix="tinyformer-worker-") as tmp:
            fw, graph = firmware_in(package.unpack(Path(tmp)), self.target.board)
            return run_images(self.target, fw, graph, inputs), self.where


Worker = ray.remote(TargetWorker)


def board_actor_name(board: str, port: str) -> str:
    return f"{board_resource(board)}/{port}"


class TargetPool:
    """The workers of ``target``'s kind in the cluster, and jobs spread over the free ones.

    Emulator workers are started here, one per ``qemu`` resource. Board workers are the ones
    ``tinyformer worker`` registered; with none, ``target`` itself (a board given on this
    command line) becomes one on this node.
    """

    def __init__(self, target: Target, limit: int | None = None) -> None:
        self.target = target
        self.limit = limit  # at most this many workers (a bench's 1 vs 2)
        self.kind = resource_of(target)
        self.workers: dict[Any, str] = {}  # actor -> identity
        self._own: list[Any] = []  # actors this pool started (and stops)
        self._names: set[str] = set()  # the board workers taken in
        self.refresh()
        if not self.workers:
            raise ClusterError(
                f"no {self.kind} target in the Ray cluster: start `tinyformer worker --target "
                f"{target.name} --ray ADDRESS` on a host that has one"
            )

    def __len__(self) -> int:
        return len(self.workers)

    def __enter__(self) -> TargetPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for actor in self._own:
            ray.kill(actor)
        self._own.clear()
        self.workers.clear()

    def refresh(self) -> None:
        """Take in the workers that appeared since (a node or a board host that joined)."""
        if self.kind == QEMU:
            free = self._free_emulators()
            if self.limit is not None:
                free = min(free, self._room() or 0)
            opts = {"num_cpus": 0, "resources": {QEMU: 1}, "max_restarts": 0}
            new = [Worker.options(**opts).remote(self.target) for _ in range(free)]
            self._own += new
        else:
            listed = ray.util.list_named_actors(all_namespaces=True)
            names = sorted(a["name"] for a in listed if a["name"].startswith(f"{self.kind}/"))
            names = [n for n in names if n not in self._names][: self._room()]
            new = [ray.get_actor(n, namespace=NAMESPACE) for n in names]
            self._names.update(names)
            if not new and not self.workers:  # the board on this command line, on this node
                here = NodeAffinitySchedulingStrategy(
                    ray.get_runtime_context().get_node_id(), False
                )
                new = [Worker.options(num_cpus=0, scheduling_strategy=here).remote(self.target)]
                self._own += new
        self._admit(new)

    def _free_emulators(self) -> int:
        """Free ``qemu`` resources. A new pool waits a moment for all of them: the workers of
        the pool before it (a search's, before the evaluation) release theirs when killed,
        a little later."""
        deadline = time.monotonic() + (RELEASE_WAIT if not self.workers else 0.0)
        while True:
            free = int(ray.available_resources().get(QEMU, 0))
            total = int(ray.cluster_resources().get(QEMU, 0))
            if free + len(self.workers) >= total or time.monotonic() >= deadline:
                return free
            time.sleep(0.1)

    def _room(self) -> int | None:
        return None if self.limit is None else max(0, self.limit - len(self.workers))

    def _admit(self, actors: list[Any]) -> None:
        """Keep the actors that answer within READY_TIMEOUT (a pending one may never start)."""
        calls = {actor.identity.remote(): actor for actor in actors}
        ready, late = ray.wait(list(calls), num_returns=len(calls), timeout=READY_TIMEOUT)
        for ref in ready:
            try:
                self.workers[calls[ref]] = result(ref)
            except ray.exceptions.RayActorError:
                continue
        for ref in late:
            if calls[ref] in self._own:
                ray.kill(calls[ref])

    def map(
        self,
        method: str,
        jobs: Sequence[tuple[Any, ...]],
        done: Callable[[int, Any, str], None],
    ) -> None:
        """Run ``method(*job)`` for every job on free workers (``dispatch``)."""
        self.refresh()
        dead = dispatch(list(self.workers), method, jobs, done, self.kind)
        for actor in dead:
            self.workers.pop(actor, None)


def dispatch(
    slots: list[Any],
    method: str,
    jobs: Sequence[tuple[Any, ...]],
    done: Callable[[int, Any, str], None],
    kind: str,
) -> set[Any]:
    """Run ``method(*job)`` for every job, one at a time per slot (an actor; one that serves
    several targets at once appears once per target); ``done(i, value, identity)`` in job
    order. A job whose actor died runs again on another; a job's own error is raised after the
    others in flight finished (and were handed over). Returns the actors that died."""
    todo = deque(range(len(jobs)))
    free = list(slots)
    dead: set[Any] = set()
    running: dict[ray.ObjectRef, tuple[int, Any]] = {}
    finished: dict[int, tuple[Any, str]] = {}
    failed: list[BaseException] = []
    handed = 0
    while todo or running:
        while todo and free and not failed:
            i, actor = todo.popleft(), free.pop()
            running[getattr(actor, method).remote(*jobs[i])] = (i, actor)
        if not running:
            if failed:
                break
            raise ClusterError(f"every {kind} worker of the cluster died; none left")
        [ref], _ = ray.wait(list(running), num_returns=1)
        i, actor = running.pop(ref)
        try:
            finished[i] = result(ref)
            free.append(actor)
        except ray.exceptions.RayActorError:  # its node died: the job goes to another
            dead.add(actor)
            free = [a for a in free if a != actor]
            todo.appendleft(i)
        except Exception as exc:  # the job's own failure (a target error, a bad input)
            failed.append(exc)
            free.append(actor)
        while handed in finished:
            done(handed, *finished.pop(handed))
            handed += 1
    for i in sorted(finished):  # after a failure: what did finish is still handed over
        done(i, *finished[i])
    if failed:
        raise failed[0]
    return dead
