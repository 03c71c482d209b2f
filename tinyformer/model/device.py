"""Where training runs: the device (a GPU when there is one), mixed precision on it, and the
CPU thread count on a shared machine.

Mixed precision is CUDA's only: autocast to float16 with a ``GradScaler``. On the CPU every
call of :class:`Precision` is the plain one (no autocast, an unscaled ``backward()``, a plain
``optimizer.step()``), so CPU training stays bit for bit what it was without it.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

DEVICES = ("auto", "cpu", "cuda")  # and cuda:N


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU; ``cpu``, ``cuda`` or ``cuda:N`` as asked.
    An unknown name or a CUDA device this machine lacks is a ValueError (one line)."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec != "cpu" and not (spec == "cuda" or spec.startswith("cuda:")):
        raise ValueError(f"--device {spec!r}: give auto, cpu, cuda or cuda:N")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"--device {spec!r}: give auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"--device {spec}: CUDA is not available here (no GPU, or this torch "
                f"{torch.__version__} has no CUDA); use --device auto or cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {spec}: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
    return device


def _cgroup_cpus(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs the container's CFS quota allows (cgroup v2 ``cpu.max``, v1 ``cfs_quota_us``)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        quota, period = (root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    with contextlib.suppress(OSError, ValueError):
        quota_us = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return None if quota_us <= 0 else quota_us / period_us
    return None


def default_threads(
    env: Mapping[str, str] | None = None, cgroup: Path = Path("/sys/fs/cgroup")
) -> int:
    """The threads a CPU run should use: ``OMP_NUM_THREADS`` when set, else the cores this
    process may run on (its CPU affinity: taskset, cpusets), capped by a cgroup CPU quota.
    Never the host's core count: torch's default would oversubscribe a shared machine."""
    env = os.environ if env is None else env
    with contextlib.suppress(ValueError):
        omp = int(env.get("OMP_NUM_THREADS", ""))
        if omp >= 1:
            return omp
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    quota = _cgroup_cpus(cgroup)
    limit = cores or 1
    if quota is not None:
        limit = min(limit, max(1, math.ceil(quota)))
    return limit


def configure_threads(num_threads: int | None) -> int:
    """Set torch's intra-op threads (and, while torch still allows it, its inter-op threads)
    to ``num_threads`` or :func:`default_threads`; returns the intra-op count in force."""
    if num_threads is not None and num_threads < 1:
        raise ValueError(f"--threads must be at least 1, got {num_threads}")
    n = default_threads() if num_threads is None else num_threads
    torch.set_num_threads(n)
    # settable once per process, before any inter-op work: a second run in the same
    # process (tests, the demo's later phases) keeps the first setting
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(n)
    return torch.get_num_threads()


class Precision:
    """Autocast and a gradient scaler, or neither: what a step does around its forward pass,
    its ``backward`` and the optimizer step.

    :meth:`for_device` enables it on CUDA only (float16). Constructed directly it also runs on
    the CPU (bfloat16), which is how the tests check the scaler's wiring without a GPU."""

    def __init__(self, device_type: str, enabled: bool, dtype: torch.dtype = torch.float16):
        self.device_type, self.enabled, self.dtype = device_type, enabled, dtype
        self.scaler = torch.amp.GradScaler(device_type, enabled=enabled)

    @classmethod
    def for_device(cls, device: torch.device, amp: bool = True) -> Precision:
        return cls(device.type, amp and device.type == "cuda")

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    def step(
        self, optimizer: torch.optim.Optimizer, model: nn.Module, grad_clip: float | None
    ) -> None:
        """Clip (the true, unscaled gradients) and step; a scaled step whose gradients
        overflowed is skipped by the scaler, which then lowers its scale."""
        if grad_clip is not None:
            self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        return self.scaler.state_dict()  # {} when disabled

    def load_state_dict(self, state: dict[str, Any] | None) -> None:
        if self.enabled and state:
            self.scaler.load_state_dict(state)
