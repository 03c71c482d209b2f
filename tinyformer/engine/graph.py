"""The integer IR's graph: tensors, nodes and their names, as the rest of the engine sees it.

The file format (tinyformer/engine/ir.py) reads and writes it and has it validated
(tinyformer/engine/validate.py); the op set, the planner and the code generator work on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

DTYPES = frozenset({"int8", "uint8", "int16", "int32"})


class IRFormatError(ValueError):
    """An IR file that cannot be read: not an IR file, damaged, or from a newer TinyFormer."""


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str = "int8"
    scale: float = 1.0
    zero_point: int = 0
    data: np.ndarray | None = None  # constants only (encoded bytes when ``encoding`` is set)
    encoding: str | None = None  # e.g. "block-rle": data holds the sparse_format blob

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * np.dtype(self.dtype).itemsize

    @property
    def is_constant(self) -> bool:
        return self.data is not None

    @property
    def const(self) -> np.ndarray:
        """The data of a constant (validation guarantees a weight operand has it)."""
        if self.data is None:
            raise IRFormatError(f"tensor {self.name!r} is an activation, not a constant")
        return self.data


@dataclass
class Node:
    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: dict[str, Tensor]
    nodes: list[Node]
    inputs: list[str]
    outputs: list[str]
    meta: dict[str, Any] = field(default_factory=dict)


def field_path(where: str, key: object) -> str:
    """``where.key``, or ``where['key']`` for a key from a file that could be anything: error
    messages stay one printable line."""
    return f"{where}.{key}" if isinstance(key, str) and key.isidentifier() else f"{where}[{key!r}]"


def c_identifier(name: str) -> str:
    """The C name of a constant called ``name`` (its node's name and a suffix)."""
    return "c_" + "".join(ch if ch.isalnum() else "_" for ch in name)
