"""Tampering with IR files the way an attacker or a buggy tool would: rewrite the JSON header
(or the framing) and recompute a valid checksum, so only validation can notice.

Also the small real graphs the validation tests and the fuzz tamper with.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import struct
from typing import Any

import numpy as np

from tinyformer.engine import ir, sparse_format
from tinyformer.engine.builder import GraphBuilder, random_hybrid_graph
from tinyformer.engine.demo import demo_graph
from tinyformer.engine.ir import Graph
from tinyformer.engine.validate import check_graph


def header_of(data: bytes) -> dict[str, Any]:
    (hdr_len,) = struct.unpack_from("<I", data, 8)
    return json.loads(data[12 : 12 + hdr_len])


def blob_of(data: bytes) -> bytes:
    (hdr_len,) = struct.unpack_from("<I", data, 8)
    return data[12 + hdr_len + 8 : -32]


def reframe(
    data: bytes,
    header: dict[str, Any] | bytes,
    version: int = ir.FORMAT_VERSION,
    reserved: int = 0,
    tail: bytes = b"",
    blob: bytes | None = None,
) -> bytes:
    """``data`` (an IR file) with ``header`` (a dict, or raw JSON bytes) for its header, maybe
    another ``blob``, and a checksum that matches; ``tail`` goes after the checksum."""
    hdr = header if isinstance(header, bytes) else json.dumps(header).encode()
    if blob is None:
        blob = blob_of(data)
    body = ir.MAGIC + struct.pack("<HHI", version, reserved, len(hdr)) + hdr
    body += struct.pack("<Q", len(blob)) + blob
    return body + hashlib.sha256(body).digest() + tail


def layout_graph() -> Graph:
    """Conv, average pooling, transpose and reshape, the ops the hybrid graph lacks, with the
    conv and linear weights stored block-sparse."""
    rng = np.random.default_rng(3)
    b = GraphBuilder("layout", rng.integers(-128, 128, (8, 8, 4), dtype=np.int8), seed=3)
    x = b.conv2d("conv", b.input, 8, 3)
    x = b.avgpool("pool", x, 2, 2)
    x = b.transpose("swap", x, (1, 0, 2))
    x = b.reshape("flat", x, (16, 8))
    graph = b.build(b.linear("head", b.global_avgpool("gap", x), 5))
    for name in ("conv_w", "head_w"):
        t = graph.tensors[name]
        blob = sparse_format.encode(t.data.reshape(t.shape[0], -1), 4)
        graph.tensors[name] = dataclasses.replace(
            t, data=np.frombuffer(blob, np.uint8).copy(), encoding=sparse_format.ENCODING
        )
    check_graph(graph)
    return graph


GRAPHS = {
    "demo": lambda: demo_graph(0, 8, 24, 16),
    "hybrid": lambda: random_hybrid_graph(0, size=8, width=8, dim=16, heads=2, blocks=1),
    "layout": layout_graph,
}
