"""Comparing counts across runs: exactly on an emulator, within a tolerance on a board."""

from __future__ import annotations

from collections.abc import Sequence

from tinyformer.hil.client import DeviceClient, RunResult


def warm_runs(dev: DeviceClient, data: bytes, n: int = 2) -> list[RunResult]:
    """``n`` runs of ``data`` after a warm-up run whose counts are dropped (cold caches)."""
    dev.run(data)
    return [dev.run(data) for _ in range(n)]


def assert_counts_agree(a: Sequence[int], b: Sequence[int], tolerance: float) -> None:
    """Counts equal within ``tolerance`` of the larger (0: exactly)."""
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert abs(x - y) <= tolerance * max(x, y), f"{list(a)} vs {list(b)}"
