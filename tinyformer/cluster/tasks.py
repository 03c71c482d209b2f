"""CPU and GPU work as Ray tasks: run anywhere in the cluster, again elsewhere if a node dies.

A task's own error (a ToolError, a bad value) comes back as itself, so the CLI still reports it
in one line; Ray's wrapper (remote traceback) is dropped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ray

RETRIES = 3  # a task on a node that dies runs again elsewhere, at most this often


def gpus() -> float:
    """GPUs in the cluster: accuracy tasks ask for one when there are any."""
    return float(ray.cluster_resources().get("GPU", 0.0))


def submit(
    fn: Callable[..., Any], *args: Any, num_cpus: float = 1, num_gpus: float = 0
) -> ray.ObjectRef:
    """Start ``fn(*args)`` as a task on a node with ``num_cpus`` CPUs and ``num_gpus`` GPUs free."""
    task = ray.remote(fn).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=RETRIES)
    return task.remote(*args)


def result(ref: ray.ObjectRef) -> Any:
    """The value of a task or actor call; its own exception re-raised as itself."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, Exception):
            raise exc.cause from None
        raise


def put(value: Any) -> ray.ObjectRef:
    """Store ``value`` once in the cluster (a supernet): tasks take the reference, not a copy."""
    return ray.put(value)
