"""The integer IR: one self-describing file per compiled model.

A graph of int8 ops in execution order. Tensors carry shape, dtype and quantization
(scale, zero point); constant tensors carry their data, weights possibly in the block
run-length encoding (``encoding`` names it). Node attributes hold the integer parameters
the op needs (zero points, Q31 multipliers and shifts, strides, ...), so the file alone
defines the model's integer semantics.

File layout (little endian)::

    b"TFIR" | u16 format_version | u16 0 | u32 header_len | header (UTF-8 JSON)
    | u64 blob_len | blob (constant tensor data) | sha256 of everything before

A truncated, corrupt or newer-version file raises :class:`IRFormatError` saying which.
"""

from __future__ import annotations

import hashlib
import json
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tinyformer.atomic_write import write_atomic_bytes

MAGIC = b"TFIR"
FORMAT_VERSION = 1
_DTYPES = {"int8", "uint8", "int16", "int32"}


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

    def validate(self) -> None:
        """Every name resolves, tensors are produced before use, dtypes are known."""
        known = set(self.inputs) | {n for n, t in self.tensors.items() if t.is_constant}
        for t in self.tensors.values():
            if t.dtype not in _DTYPES:
                raise IRFormatError(f"tensor {t.name!r} has unknown dtype {t.dtype!r}")
        for name in [*self.inputs, *self.outputs]:
            if name not in self.tensors:
                raise IRFormatError(f"graph input/output {name!r} is not a tensor")
        for node in self.nodes:
            for t in node.inputs:
                if t not in self.tensors:
                    raise IRFormatError(f"node {node.name!r} reads unknown tensor {t!r}")
                if t not in known:
                    raise IRFormatError(f"node {node.name!r} reads {t!r} before it is produced")
            for t in node.outputs:
                if t not in self.tensors:
                    raise IRFormatError(f"node {node.name!r} writes unknown tensor {t!r}")
                known.add(t)
        for t in self.outputs:
            if t not in known:
                raise IRFormatError(f"graph output {t!r} is never produced")

    def digest(self) -> str:
        return hashlib.sha256(to_bytes(self)).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def to_bytes(graph: Graph) -> bytes:
    graph.validate()
    blob = bytearray()
    tensors = {}
    for name, t in graph.tensors.items():
        entry: dict[str, Any] = {
            "shape": list(t.shape), "dtype": t.dtype, "scale": float(t.scale),
            "zero_point": int(t.zero_point), "encoding": t.encoding,
        }  # fmt: skip
        if t.data is not None:
            raw = np.ascontiguousarray(t.data).tobytes()
            entry["data"] = {"offset": len(blob), "nbytes": len(raw), "dtype": str(t.data.dtype)}
            blob += raw
            blob += b"\x00" * (-len(blob) % 8)
        tensors[name] = entry
    header = {
        "name": graph.name,
        "inputs": graph.inputs,
        "outputs": graph.outputs,
        "meta": _jsonable(graph.meta),
        "tensors": tensors,
        "nodes": [
            {
                "op": n.op,
                "name": n.name,
                "inputs": n.inputs,
                "outputs": n.outputs,
                "attrs": _jsonable(n.attrs),
            }
            for n in graph.nodes
        ],
    }
    hdr = json.dumps(header, separators=(",", ":")).encode()
    body = MAGIC + struct.pack("<HHI", FORMAT_VERSION, 0, len(hdr)) + hdr
    body += struct.pack("<Q", len(blob)) + bytes(blob)
    return body + hashlib.sha256(body).digest()


def field_path(where: str, key: object) -> str:
    """``where.key``, or ``where['key']`` for a key from a file that could be anything: error
    messages stay one printable line."""
    return f"{where}.{key}" if isinstance(key, str) and key.isidentifier() else f"{where}[{key!r}]"


def from_bytes(data: bytes, source: str = "IR data") -> Graph:
    if len(data) < 12 or data[:4] != MAGIC:
        raise IRFormatError(f"{source} is not a TinyFormer IR file (bad magic)")
    version, _, hdr_len = struct.unpack_from("<HHI", data, 4)
    if version > FORMAT_VERSION:
        raise IRFormatError(
            f"{source} uses IR format v{version}, made by a newer TinyFormer; "
            f"this one reads up to v{FORMAT_VERSION}: upgrade tinyformer"
        )
    end_hdr = 12 + hdr_len
    if len(data) < end_hdr + 8 + 32:
        raise IRFormatError(f"{source} is truncated ({len(data)} bytes)")
    (blob_len,) = struct.unpack_from("<Q", data, end_hdr)
    end_blob = end_hdr + 8 + blob_len
    if len(data) < end_blob + 32:
        raise IRFormatError(f"{source} is truncated ({len(data)} of {end_blob + 32} bytes)")
    if hashlib.sha256(data[:end_blob]).digest() != data[end_blob : end_blob + 32]:
        raise IRFormatError(f"{source} is corrupt (checksum mismatch)")
    try:
        header = json.loads(data[12:end_hdr])
        blob = data[end_hdr + 8 : end_blob]
        tensors = {}
        for name, e in header["tensors"].items():
            arr = None
            if e.get("data"):
                d = e["data"]
                raw = blob[d["offset"] : d["offset"] + d["nbytes"]]
                arr = np.frombuffer(raw, dtype=d["dtype"]).copy()
                if e["encoding"] is None:
                    arr = arr.reshape(e["shape"])
            tensors[name] = Tensor(
                name, tuple(e["shape"]), e["dtype"], e["scale"], e["zero_point"], arr,
                e["encoding"],
            )  # fmt: skip
        nodes = [
            Node(n["op"], n["name"], n["inputs"], n["outputs"], n["attrs"]) for n in header["nodes"]
        ]
        graph = Graph(
            header["name"], tensors, nodes, header["inputs"], header["outputs"], header["meta"]
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise IRFormatError(f"{source} has a malformed header: {exc}") from exc
    graph.validate()
    return graph


def save(graph: Graph, path: Path) -> Path:
    """Write atomically: a crash leaves the old file or the new one."""
    return write_atomic_bytes(to_bytes(graph), Path(path))


def load(path: Path) -> Graph:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IRFormatError(f"cannot read IR file {path}: {exc.strerror}") from exc
    return from_bytes(data, source=str(path))
