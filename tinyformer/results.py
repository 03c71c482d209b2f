"""The measurements table: one row per (model, target, metric), appended atomically.

Columns: model_id, target, metric, value, unit, source, git_rev, time. Writers
take a lock file, read the table, append and replace it in one rename, so concurrent
writers (a search's worker pool) and a crash mid-write never lose a measured row.

A keyed table (the latency samples) holds each measurement once: rows are stored and read
as the latest measurement of their key, so measuring again (a search resumed after a kill
that came between storing a measurement and its checkpoint) replaces instead of adding.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from tinyformer.atomic_write import write_atomic_text

COLUMNS = ["model_id", "target", "metric", "value", "unit", "source", "git_rev", "time"]
DEFAULT_RESULTS = Path("results")
MEASUREMENTS = "measurements.csv"


def percent(fraction: float) -> str:
    """A fraction (an accuracy, an agreement) for people: a percentage with two decimals
    (a raw 0.22841225626740946 suggests a precision no test set has). Tables and JSON keep
    the fraction."""
    return f"{100 * fraction:.2f} %"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold the table's lock file: one writer at a time, across processes. The lock file is
    removed on release, so none is left beside the table. A writer that waited on a file a
    releaser has just removed finds it is no longer the file at that path and tries again."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    while True:
        with open(lock_path, "a") as lock:  # closing it releases the flock
            fcntl.flock(lock, fcntl.LOCK_EX)
            held = os.fstat(lock.fileno())
            try:
                current = os.stat(lock_path)
            except FileNotFoundError:
                continue  # removed by the writer before us: lock a fresh one
            if (current.st_dev, current.st_ino) != (held.st_dev, held.st_ino):
                continue  # replaced meanwhile: the lock that counts is the new file's
            try:
                yield
            finally:
                # still holding it: a waiter on this file will retry
                lock_path.unlink(missing_ok=True)
            return


def write_atomic(frame: pd.DataFrame, path: Path) -> None:
    """Write a CSV table atomically."""
    write_atomic_text(frame.to_csv(index=False), path)


def append_rows(
    rows: Iterable[dict], path: Path, columns: list[str] = COLUMNS, key: Sequence[str] = ()
) -> pd.DataFrame:
    """Append rows to the CSV table at ``path`` (measurements by default); returns it all.

    With a ``key``, the table's rows with the key of a new row are dropped first.
    """
    new = pd.DataFrame(list(rows), columns=columns)
    missing = new[columns].isna().any(axis=1)
    if missing.any():
        raise ValueError(f"rows lack values: {new[missing].to_dict('records')}")
    with locked(path):
        old = read_table(path, columns, key) if path.exists() else None
        if old is not None and key:  # the old keys were read as text: compare as text
            fresh = new[list(key)].astype(str).set_index(list(key)).index
            old = old[~old.set_index(list(key)).index.isin(fresh)]
        table = new if old is None or old.empty else pd.concat([old, new], ignore_index=True)
        write_atomic(table, path)
    return table


def read_table(path: Path, columns: list[str] = COLUMNS, key: Sequence[str] = ()) -> pd.DataFrame:
    """The table at ``path``; with a ``key``, only each key's latest measurement (``latest``)."""
    # read as text: a key such as a hex id of digits only must not come back as a number
    table = pd.read_csv(path, dtype=dict.fromkeys(key, str))
    absent = set(columns) - set(table.columns)
    if absent:
        raise ValueError(f"{path} is not the expected table: no column(s) {sorted(absent)}")
    return latest(table, key) if key else table


def latest(table: pd.DataFrame, key: Sequence[str]) -> pd.DataFrame:
    """The rows of each key's newest ``time``: the rows of one measurement share a time, so
    a measurement stored twice (by versions that appended a repeat) counts once."""
    if table.empty:
        return table
    newest = table.groupby(list(key), sort=False, dropna=False)["time"].transform("max")
    return table[table["time"] == newest].reset_index(drop=True)
