"""One way to run work: Ray, started on this machine by default or joined with ``--ray``.

``ray_session`` gives the caller a connected Ray: an existing connection as it is (a test's
cluster, an outer command's session), the cluster at ``address`` (``--ray`` or RAY_ADDRESS),
or a local node with one ``qemu`` resource per core (nothing to start by hand, no dashboard,
Ray's logs kept off the terminal). What it started it stops.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from tinyformer.errors import ToolError

NAMESPACE = "tinyformer"  # named actors (the board workers) live here
QEMU = "qemu"  # the resource of one emulator worker (one per core)


def board_resource(board: str) -> str:
    """The resource of one attached board of kind ``board``, e.g. ``board:stm32f746``."""
    return f"board:{board}"


class ClusterError(ToolError):
    """The cluster cannot be reached, or has no target of the kind a run needs."""


def _quiet() -> None:
    # read when Ray is imported: no usage-stats notice on every command
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Refuse a head that nothing answers at (Ray itself would retry for minutes)."""
    if "://" in address or address == "auto":
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ClusterError(f"--ray {address}: give the head's HOST:PORT, e.g. 10.0.0.5:6379")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(
            f"no Ray head answers at {address} ({exc.strerror or exc}): start one there with "
            "`ray start --head`"
        ) from None


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[float]:
    """Connected to Ray while the block runs; yields the seconds the connection took.

    ``address``: a cluster's (``host:6379`` or ``ray://host:10001``); None: RAY_ADDRESS, else
    a local node of ``num_cpus`` CPUs (all cores by default) and as many ``qemu`` resources.
    """
    _quiet()
    import ray

    if ray.is_initialized():
        yield 0.0
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        _check_reachable(address)
    start = time.perf_counter()
    common: dict[str, Any] = {
        "namespace": NAMESPACE,
        "logging_level": "ERROR",
        "log_to_driver": False,
    }
    try:
        if address:
            ray.init(address=address, **common)
        else:
            cpus = num_cpus or os.cpu_count() or 1
            ray.init(
                num_cpus=cpus,
                resources={QEMU: cpus},
                include_dashboard=False,
                **common,
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray node"
        raise ClusterError(f"cannot start or reach {where}: {' '.join(str(exc).split())}") from None
    try:
        yield time.perf_counter() - start
    finally:
        ray.shutdown()
