"""The firmware id: a hash of what decides an inference's counts, blind to comments.

Counts measured with other sources are stale: the latency model only uses samples whose
firmware id is the current one. The counts depend on the firmware sources (kernels,
runtime, Makefile, linker script) and on the code generator that writes the model's C
(tinyformer/engine: which kernel, which tables, which layouts). Comments, docstrings and
blank lines change neither, so they are left out: editing them keeps the samples.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import re
from pathlib import Path

from tinyformer.hil.firmware import FIRMWARE_DIR

ENGINE_DIR = Path(__file__).resolve().parents[1] / "engine"

# C comments, or a string / character literal (kept: it may hold "//" or assembly).
_C_TOKEN = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', re.S)


def c_code(text: str) -> str:
    """C without its comments, trailing spaces and blank lines."""
    stripped = _C_TOKEN.sub(lambda m: m.group(0) if m.group(0)[0] in "\"'" else " ", text)
    return "\n".join(line.rstrip() for line in stripped.splitlines() if line.strip())


def python_code(text: str) -> str:
    """Python's syntax tree without docstrings (comments are not in it)."""
    tree = ast.parse(text)
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(body, list)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            body.pop(0)
    return ast.dump(tree)


def _sources(firmware_dir: Path, engine_dir: Path) -> list[tuple[Path, Path]]:
    """(root, file) of everything the id covers, in a fixed order."""
    out = []
    for root, pattern in ((firmware_dir, "*"), (engine_dir, "*.py")):
        for path in sorted(p for p in root.rglob(pattern) if p.is_file()):
            if path.suffix in (".c", ".h", ".S", ".py", ".ld") or path.name == "Makefile":
                out.append((root, path))
    return out


def _normalized(path: Path) -> str:
    text = path.read_text()
    if path.suffix in (".c", ".h", ".S"):
        return c_code(text)
    return python_code(text) if path.suffix == ".py" else text


@functools.lru_cache(maxsize=8)
def _digest(files: tuple[tuple[Path, Path, int, int], ...]) -> str:
    h = hashlib.sha256()
    for root, path, _, _ in files:
        h.update(f"{root.name}/{path.relative_to(root)}\0{_normalized(path)}\0".encode())
    return h.hexdigest()[:12]


def firmware_id(firmware_dir: Path = FIRMWARE_DIR, engine_dir: Path = ENGINE_DIR) -> str:
    """12 hex digits over the firmware's C and build files and the engine's Python (cached
    while no file's size or modification time changes)."""
    files = tuple(
        (root, path, (st := path.stat()).st_mtime_ns, st.st_size)
        for root, path in _sources(firmware_dir, engine_dir)
    )
    return _digest(files)
