"""The firmware id changes with what decides the counts, not with comments or docstrings."""

from __future__ import annotations

import shutil
from pathlib import Path

from tinyformer.hil.firmware import FIRMWARE_DIR
from tinyformer.hil.source_hash import ENGINE_DIR, c_code, firmware_id


def _copies(tmp_path: Path) -> tuple[Path, Path]:
    fw, engine = tmp_path / "firmware", tmp_path / "engine"
    shutil.copytree(FIRMWARE_DIR, fw, ignore=shutil.ignore_patterns("build*"))
    shutil.copytree(ENGINE_DIR, engine, ignore=shutil.ignore_patterns("__pycache__"))
    return fw, engine


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_comments_and_docstrings_keep_the_id(tmp_path: Path) -> None:
    fw, engine = _copies(tmp_path)
    before = firmware_id(fw, engine)
    kernel = fw / "kernels" / "tf_add_s8.c"
    _edit(kernel, "#include", "/* a new comment */\n// and another\n\n#include")
    _edit(engine / "opset.py", '"""', '"""Reworded. ')
    _edit(engine / "codegen.py", "\n", "\n# a comment\n")
    assert firmware_id(fw, engine) == before


def test_kernel_or_code_generator_changes_change_the_id(tmp_path: Path) -> None:
    fw, engine = _copies(tmp_path)
    before = firmware_id(fw, engine)
    _edit(fw / "kernels" / "tf_add_s8.c", "#include", "static const int tf_unused_x = 1;\n#include")
    kernel_changed = firmware_id(fw, engine)
    _edit(engine / "opset.py", "import", "import math  # noqa\nimport")
    assert len({before, kernel_changed, firmware_id(fw, engine)}) == 3


def test_c_code_keeps_string_literals() -> None:
    src = 'int a; // gone\n/* gone\ntoo */ const char *s = "socket://x /* kept */";\n\n'
    assert c_code(src) == 'int a;\n  const char *s = "socket://x /* kept */";'
