"""Atomic writes (results tables, IR files, model.c, checkpoints): whole files, sane modes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tinyformer.atomic_write import write_atomic_bytes, write_atomic_text


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_file_gets_the_mode_open_would_give(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = write_atomic_text("a,b\n", tmp_path / "sub" / "table.csv")
    finally:
        os.umask(old)
    assert path.read_text() == "a,b\n"
    assert _mode(path) == 0o644  # not mkstemp's 0600: the lab can read it
    assert [p.name for p in path.parent.iterdir()] == ["table.csv"]


def test_an_existing_file_keeps_its_mode(tmp_path: Path) -> None:
    path = tmp_path / "model.tfir"
    path.write_bytes(b"old")
    path.chmod(0o640)
    write_atomic_bytes(b"new", path)
    assert path.read_bytes() == b"new" and _mode(path) == 0o640


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    path.write_text("kept\n")
    with pytest.raises(TypeError):
        write_atomic_bytes("not bytes", path)  # type: ignore[arg-type]
    assert path.read_text() == "kept\n"
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]
