"""The measurements table: appends are atomic and survive concurrent writers."""

from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
import pytest

from tinyformer.results import COLUMNS, append_rows, read_table


def row(i: int) -> dict:
    return {
        "model_id": f"m{i}", "target": "qemu", "metric": "latency", "value": i,
        "unit": "instructions", "source": "qemu-icount-instructions", "git_rev": "abc",
        "time": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip


def _append(args: tuple[Path, int]) -> None:
    append_rows([row(args[1])], args[0])


def test_append_keeps_every_row_of_concurrent_writers(tmp_path: Path) -> None:
    path = tmp_path / "results" / "measurements.csv"
    with ProcessPoolExecutor(4) as pool:  # writers also race the removal of the lock file
        list(pool.map(_append, [(path, i) for i in range(40)]))
    table = read_table(path)
    assert list(table.columns) == COLUMNS
    assert sorted(table["value"]) == list(range(40))
    assert not list(path.parent.glob("*.tmp"))
    assert not list(path.parent.glob("*.lock"))  # nothing left beside the table


def test_rows_missing_values_are_refused(tmp_path: Path) -> None:
    bad = row(1) | {"unit": None}
    with pytest.raises(ValueError, match="lack values"):
        append_rows([bad], tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def test_foreign_csv_is_not_taken_for_a_table(tmp_path: Path) -> None:
    path = tmp_path / "m.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="not the expected table"):
        append_rows([row(1)], path)


def test_keyed_rows_replace_a_repeated_measurement(tmp_path: Path) -> None:
    """A measurement stored again (a resumed search repeating one) replaces its rows; other
    keys, and rows sharing a key within one measurement, are all kept."""
    path = tmp_path / "samples.csv"
    key = ["model_id", "metric"]
    first = [row(1), row(2) | {"metric": "flash"}, row(2) | {"metric": "flash", "value": 3}]
    append_rows(first, path, key=key)
    again = row(2) | {"metric": "flash", "value": 4, "time": "2026-01-02T00:00:00+00:00"}
    table = append_rows([again], path, key=key)
    assert sorted(table["value"]) == [1, 4]
    assert read_table(path, key=key).equals(read_table(path))


def test_a_table_holding_a_measurement_twice_is_read_once(tmp_path: Path) -> None:
    """Tables from versions that appended repeats: each key keeps its latest measurement."""
    path = tmp_path / "samples.csv"
    later = "2026-01-02T00:00:00+00:00"
    rows = [row(1), row(1) | {"value": 2, "time": later}, row(1) | {"value": 3, "time": later}]
    rows += [row(5) | {"model_id": "0123456789"}]  # an id of digits stays text
    pd.DataFrame(rows).to_csv(path, index=False)
    table = read_table(path, key=["model_id"])
    assert sorted(table["value"]) == [2, 3, 5]
    assert "0123456789" in set(table["model_id"])
    append_rows([row(5) | {"model_id": "0123456789", "value": 6}], path, key=["model_id"])
    assert sorted(read_table(path)["value"]) == [2, 3, 6]  # the old repeat is gone from disk
