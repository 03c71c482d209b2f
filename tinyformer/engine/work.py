"""What a layer computes: its dense multiply-accumulates and how its weights are stored."""

from __future__ import annotations

import numpy as np

from tinyformer.engine import sparse_format
from tinyformer.engine.graph import Graph, Node
from tinyformer.engine.opset import is_sparse, weights_of


def node_macs(node: Node, graph: Graph) -> int:
    """Dense multiply-accumulates of one node (weighted layers and attention; 0 otherwise)."""
    n_out = int(np.prod(graph.tensors[node.outputs[0]].shape))
    if node.op in ("linear", "conv2d"):
        return n_out * int(np.prod(graph.tensors[node.inputs[1]].shape[1:]))
    if node.op == "depthwise_conv2d":
        kh, kw, _ = graph.tensors[node.inputs[1]].shape
        return n_out * kh * kw
    if node.op in ("matmul_qk", "matmul_av"):
        a = graph.tensors[node.inputs[0]].shape
        heads = int(node.attrs["heads"])
        return n_out * (a[-1] // heads if node.op == "matmul_qk" else a[-1])
    return 0


def graph_macs(graph: Graph) -> int:
    """Dense multiply-accumulates of one inference."""
    return sum(node_macs(node, graph) for node in graph.nodes)


def weight_storage(node: Node, graph: Graph) -> tuple[str, int, int]:
    """("dense" | "sparse", block size, non-zero blocks) of a linear or conv2d node."""
    name = node.inputs[1]
    if not is_sparse(graph, name):
        return "dense", 1, 0
    block = int(sparse_format.header(graph.tensors[name].const.tobytes()).block)
    nonzero = int(np.count_nonzero(sparse_format.block_mask(weights_of(graph, name), block)))
    return "sparse", block, nonzero
