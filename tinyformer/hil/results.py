"""The measurements table: one row per (model, target, metric), appended atomically.

Columns (DESIGN.md): model_id, target, metric, value, unit, source, git_rev, time. Writers
take a lock file, read the table, append and replace it in one rename, so concurrent
writers (a search's worker pool) and a crash mid-write never lose a measured row.
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from tinyformer.atomic_write import write_atomic_text

COLUMNS = ["model_id", "target", "metric", "value", "unit", "source", "git_rev", "time"]
DEFAULT_RESULTS = Path("results")
MEASUREMENTS = "measurements.csv"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the table's lock file: one writer at a time, across processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def write_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV table atomically."""
    write_atomic_text(frame.to_csv(index=False), path)


def append_rows(rows: Iterable[dict], path: Path, columns: list[str] = COLUMNS) -> pd.DataFrame:
    """Append rows to the CSV table at ``path`` (measurements by default); returns it all."""
    new = pd.DataFrame(list(rows), columns=columns)
    missing = new[columns].isna().any(axis=1)
    if missing.any():
        raise ValueError(f"rows lack values: {new[missing].to_dict('records')}")
    with locked(path):
        old = read_table(path, columns) if path.exists() else None
        table = new if old is None or old.empty else pd.concat([old, new], ignore_index=True)
        write_atomic(table, path)
    return table


def read_table(path: Path, columns: list[str] = COLUMNS) -> pd.DataFrame:
    table = pd.read_csv(path)
    absent = set(columns) - set(table.columns)
    if absent:
        raise ValueError(f"{path} is not the expected table: no column(s) {sorted(absent)}")
    return table
