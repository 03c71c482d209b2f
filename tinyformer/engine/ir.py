"""The integer IR: one self-describing file per compiled model.

A graph of int8 ops in execution order. Tensors carry shape, dtype and quantization
(scale, zero point); constant tensors carry their data, weights possibly in the block
run-length encoding (``encoding`` names it). Node attributes hold the integer parameters
the op needs (zero points, Q31 multipliers and shifts, strides, ...), so the file alone
defines the model's integer semantics.

File layout (little endian)::

    b"TFIR" | u16 format_version | u16 0 | u32 header_len | header (UTF-8 JSON)
    | u64 blob_len | blob (constant tensor data) | sha256 of everything before

Constant data lies in the blob in tensor order, each at the next multiple of 8 bytes, with
zero padding; nothing follows the checksum. Loading checks all of it, then the graph
(:mod:`tinyformer.engine.validate`: types, ranges, op specs, shapes along the graph). A
truncated, corrupt, inconsistent or newer-version file raises :class:`IRFormatError` saying
which, in one line.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np

from tinyformer.atomic_write import write_atomic_bytes
from tinyformer.engine import strictjson
from tinyformer.engine.graph import (  # re-exported: ir.Graph is the name users know
    DTYPES,
    Graph,
    IRFormatError,
    Node,
    Tensor,
    field_path,
)
from tinyformer.engine.validate import check_graph

__all__ = [
    "DTYPES",
    "Graph",
    "IRFormatError",
    "Node",
    "Tensor",
    "digest",
    "field_path",
    "load",
    "save",
]

MAGIC = b"TFIR"
FORMAT_VERSION = 1
BLOB_ALIGN = 8
_HEADER_KEYS = frozenset({"name", "inputs", "outputs", "meta", "tensors", "nodes"})
_TENSOR_KEYS = frozenset({"shape", "dtype", "scale", "zero_point", "encoding"})
_DATA_KEYS = frozenset({"offset", "nbytes", "dtype"})
_NODE_KEYS = frozenset({"op", "name", "inputs", "outputs", "attrs"})


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
    check_graph(graph)
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
            blob += b"\x00" * (-len(blob) % BLOB_ALIGN)
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


def _fields(
    where: str, obj: Any, keys: frozenset[str], optional: frozenset[str] = frozenset()
) -> dict[str, Any]:
    """``obj`` if it is a JSON object with exactly ``keys`` (and maybe some ``optional``)."""
    if not isinstance(obj, dict):
        raise IRFormatError(f"{where} must be an object, got {type(obj).__name__}")
    missing, unknown = keys - obj.keys(), obj.keys() - keys - optional
    if missing:
        raise IRFormatError(f"{field_path(where, sorted(missing)[0])} is missing")
    if unknown:
        raise IRFormatError(f"{field_path(where, sorted(unknown)[0])} is not a field of the format")
    return obj


def _typed(where: str, value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or isinstance(value, bool):
        raise IRFormatError(f"{where} must be {kind.__name__}, got {value!r:.40}")
    return value


def _tensor_data(where: str, entry: dict, blob: bytes, offset: int) -> np.ndarray:
    """A constant's data: ``offset`` is where the layout puts it (after the previous one's)."""
    d = _fields(where, entry["data"], _DATA_KEYS)
    if _typed(f"{where}.offset", d["offset"], int) != offset:
        raise IRFormatError(f"{where}.offset is {d['offset']}, the layout puts it at {offset}")
    nbytes = _typed(f"{where}.nbytes", d["nbytes"], int)
    dtype = _typed(f"{where}.dtype", d["dtype"], str)
    if dtype not in DTYPES:
        raise IRFormatError(f"{where}.dtype {dtype!r:.40} is not one of {sorted(DTYPES)}")
    end = offset + nbytes
    if nbytes < 0 or nbytes % np.dtype(dtype).itemsize or end > len(blob):
        raise IRFormatError(f"{where}.nbytes {nbytes}: not whole {dtype}s within the blob")
    arr = np.frombuffer(blob[offset:end], dtype=dtype).copy()
    shape = entry["shape"]
    dims_ok = all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape)
    if entry["encoding"] is None and dims_ok and math.prod(shape) == arr.size:
        arr = arr.reshape(shape)  # otherwise validation reports the mismatch
    return arr


def _graph(header: Any, blob: bytes) -> Graph:
    """The graph a parsed header describes, with its data from ``blob``: every field present
    and of the type the layout needs; validation checks the values."""
    h = _fields("header", header, _HEADER_KEYS)
    tensors = {}
    offset = 0
    for name, e in _typed("tensors", h["tensors"], dict).items():
        where = field_path("tensors", name)
        e = _fields(where, e, _TENSOR_KEYS, frozenset({"data"}))
        shape = _typed(f"{where}.shape", e["shape"], list)
        arr = None
        if "data" in e:
            arr = _tensor_data(f"{where}.data", e, blob, offset)
            end = offset + arr.nbytes
            offset = end + -end % BLOB_ALIGN
            if any(blob[end:offset]):
                raise IRFormatError(f"{where}.data is followed by non-zero padding")
        tensors[name] = Tensor(
            name, tuple(shape), e["dtype"], e["scale"], e["zero_point"], arr, e["encoding"]
        )
    if offset != len(blob):
        raise IRFormatError(f"the blob holds {len(blob) - offset} bytes no tensor owns")
    nodes = []
    for i, n in enumerate(_typed("nodes", h["nodes"], list)):
        n = _fields(f"nodes[{i}]", n, _NODE_KEYS)
        nodes.append(Node(n["op"], n["name"], n["inputs"], n["outputs"], n["attrs"]))
    return Graph(h["name"], tensors, nodes, h["inputs"], h["outputs"], h["meta"])


def from_bytes(data: bytes, source: str = "IR data") -> Graph:
    if len(data) < 12 or data[:4] != MAGIC:
        raise IRFormatError(f"{source} is not a TinyFormer IR file (bad magic)")
    version, reserved, hdr_len = struct.unpack_from("<HHI", data, 4)
    if version > FORMAT_VERSION:
        raise IRFormatError(
            f"{source} uses IR format v{version}, made by a newer TinyFormer; "
            f"this one reads up to v{FORMAT_VERSION}: upgrade tinyformer"
        )
    if version < 1 or reserved != 0:
        raise IRFormatError(f"{source} is corrupt (format v{version}, reserved field {reserved})")
    end_hdr = 12 + hdr_len
    if len(data) < end_hdr + 8 + 32:
        raise IRFormatError(f"{source} is truncated ({len(data)} bytes)")
    (blob_len,) = struct.unpack_from("<Q", data, end_hdr)
    end_blob = end_hdr + 8 + blob_len
    if len(data) < end_blob + 32:
        raise IRFormatError(f"{source} is truncated ({len(data)} of {end_blob + 32} bytes)")
    if hashlib.sha256(data[:end_blob]).digest() != data[end_blob : end_blob + 32]:
        raise IRFormatError(f"{source} is corrupt (checksum mismatch)")
    if len(data) > end_blob + 32:
        raise IRFormatError(f"{source} has {len(data) - end_blob - 32} bytes after its checksum")
    try:
        header = strictjson.loads(data[12:end_hdr])
    except ValueError as exc:
        raise IRFormatError(f"{source} has a malformed header: {exc}") from None
    try:
        graph = _graph(header, data[end_hdr + 8 : end_blob])
        check_graph(graph)
    except IRFormatError as exc:
        raise IRFormatError(f"{source}: {exc}") from None
    return graph


def digest(graph: Graph) -> str:
    """sha256 of the graph's file: equal for graphs that save to the same bytes."""
    return hashlib.sha256(to_bytes(graph)).hexdigest()


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
