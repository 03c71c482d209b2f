"""The firmware's kernel headers: where they are, the numbers Python shares with them, and
the key of the kernels the cost model predicts.

A tile size is the kernels' decision; the planner reserves scratch for it and the cost model
counts in it. Reading it from the header keeps one definition: a tile changed in C is the
tile Python plans for.

The cost model's fit (``engine/fitted/sparse_cost.json``) is keyed to what it measured: the
dense and block-sparse FC and conv kernels (their C, headers and assembly, with every kernel
header they include) and the compiler flags, not the whole firmware id, which hashes the
generated model C and so the storage choices the fit itself makes.
"""

from __future__ import annotations

import hashlib
import re
from functools import cache
from pathlib import Path

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
KERNELS_DIR = FIRMWARE_DIR / "kernels"


@cache
def header_define(header: str, name: str) -> int:
    """The integer value of ``#define name <int>`` in firmware/kernels/``header``."""
    text = (KERNELS_DIR / header).read_text()
    match = re.search(rf"^#define\s+{name}\s+(\d+)u?\b", text, re.MULTILINE)
    if match is None:
        raise LookupError(f"{header} defines no integer {name}")
    return int(match.group(1))


FC_TILE = header_define("tf_fully_connected_s8.h", "TF_FC_TILE")  # tokens per dense tile
SPARSE_TILE = header_define("tf_sparse_fully_connected_s8.h", "TF_SFC_TILE")  # sparse tile

# The kernels whose counts the cost model predicts (engine/sparse_cost.py).
COST_KERNELS = (
    "tf_fully_connected_s8",
    "tf_conv2d_s8",
    "tf_sparse_fully_connected_s8",
    "tf_sparse_conv2d_s8",
)
# C comments, or a string / character literal (kept: it may hold "//" or assembly).
_C_TOKEN = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', re.S)
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)
# The Makefile's assignments that set how every kernel is compiled (continuation lines too).
_FLAGS = re.compile(r"^(?:OPT|ARCH|CFLAGS)\s*[:?]?=(?:[^\n]*\\\n)*[^\n]*", re.MULTILINE)


def c_code(text: str) -> str:
    """C without its comments, trailing spaces and blank lines."""
    stripped = _C_TOKEN.sub(lambda m: m.group(0) if m.group(0)[0] in "\"'" else " ", text)
    return "\n".join(line.rstrip() for line in stripped.splitlines() if line.strip())


def cost_kernel_files(kernels_dir: Path = KERNELS_DIR) -> list[Path]:
    """The cost kernels' .c, .h and _arm.S files and the kernel headers they include."""
    todo = [p for k in COST_KERNELS for p in kernels_dir.glob(f"{k}[._]*")]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen or not path.is_file():
            continue
        seen.add(path)
        todo += [kernels_dir / name for name in _INCLUDE.findall(path.read_text())]
    return sorted(seen)


def kernel_sources_key(firmware_dir: Path = FIRMWARE_DIR) -> str:
    """12 hex digits over the cost kernels' code (comments and blank lines aside) and the
    compiler flags: a change to either makes the cost model's fit stale."""
    h = hashlib.sha256()
    for path in cost_kernel_files(firmware_dir / "kernels"):
        h.update(f"{path.name}\0{c_code(path.read_text())}\0".encode())
    for flags in _FLAGS.findall((firmware_dir / "Makefile").read_text()):
        h.update(f"{flags}\0".encode())
    return h.hexdigest()[:12]
