"""Weight storage pass: store each conv2d / linear weight dense or block-sparse.

For every weighted layer the engine's cost model (``sparse_cost.choose_storage``) compares
dense storage with block run-length storage at the block size the layer was pruned with
(``node.attrs["block"]``; every block size when absent) and keeps whichever is smaller or
faster. The graph's integer semantics do not change: encoded weights decode to the same
values.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyformer.engine import sparse_cost, sparse_format
from tinyformer.engine.graph import Graph

WEIGHTED = ("linear", "conv2d")


def _tokens(graph: Graph, node_out: str) -> int:
    shape = graph.tensors[node_out].shape
    return int(np.prod(shape[:-1]))


def encode_weights(graph: Graph) -> Graph:
    """A copy of ``graph`` with each weighted layer's storage chosen by the cost model."""
    tensors = dict(graph.tensors)
    for node in graph.nodes:
        name = node.inputs[1] if node.op in WEIGHTED else None
        if name is None or tensors[name].encoding is not None:
            continue
        t = tensors[name]
        rows = np.asarray(t.data).reshape(t.shape[0], -1)
        hint = node.attrs.get("block")
        kxk = node.op == "conv2d" and t.shape[1] * t.shape[2] > 1
        choice = sparse_cost.choose_storage(
            rows,
            tokens=_tokens(graph, node.outputs[0]),
            blocks=(hint,) if hint else None,
            im2col=kxk,
            channels_aligned=not kxk or t.shape[3] % 4 == 0,
        )
        if choice.encoding is None:
            continue
        blob = sparse_format.encode(rows, choice.block)
        tensors[name] = dataclasses.replace(
            t, data=np.frombuffer(blob, np.uint8).copy(), encoding="block-rle"
        )
    return dataclasses.replace(graph, tensors=tensors)
