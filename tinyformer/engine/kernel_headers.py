"""The firmware's kernel headers: where they are, and the numbers Python shares with them.

A tile size is the kernels' decision; the planner reserves scratch for it and the cost model
counts in it. Reading it from the header keeps one definition: a tile changed in C is the
tile Python plans for.
"""

from __future__ import annotations

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
