"""The firmware id changes with what decides the counts (kernel code, generated C), not with
comments or code generator refactors."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tinyformer.compiler.firmware import FIRMWARE_DIR
from tinyformer.compiler.source_hash import c_code, firmware_id, generated_code_digest
from tinyformer.engine.cmodel import CModel


@pytest.fixture
def firmware(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIRMWARE_DIR, tmp_path / "firmware"))


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_comments_keep_the_id(firmware: Path) -> None:
    before = firmware_id(firmware)
    _edit(firmware / "kernels" / "tf_add_s8.c", "#include", "/* new */\n// another\n\n#include")
    assert firmware_id(firmware) == before


def test_kernel_code_changes_the_id(firmware: Path) -> None:
    before = firmware_id(firmware)
    _edit(firmware / "kernels" / "tf_add_s8.c", "#include", "static const int tf_x = 1;\n#include")
    assert firmware_id(firmware) != before


def test_generated_code_changes_the_id(firmware: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    before = firmware_id(firmware)
    render = CModel.render
    monkeypatch.setattr(CModel, "render", lambda self: render(self) + "/* changed */\n")
    generated_code_digest.cache_clear()
    try:
        assert firmware_id(firmware) != before
    finally:
        monkeypatch.undo()
        generated_code_digest.cache_clear()
    assert firmware_id(firmware) == before


def test_c_code_keeps_string_literals() -> None:
    src = 'int a; // gone\n/* gone\ntoo */ const char *s = "socket://x /* kept */";\n\n'
    assert c_code(src) == 'int a;\n  const char *s = "socket://x /* kept */";'


def test_version_names_the_firmware_id() -> None:
    """`tinyformer --version`: what a bug report about a count needs."""
    from typer.testing import CliRunner

    from tinyformer.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("tinyformer ") and f"firmware {firmware_id()}" in result.output
