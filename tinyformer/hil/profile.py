"""Per-layer profile of a measured run: where an inference's instructions (or cycles) go."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tinyformer.engine.ir import Graph
from tinyformer.engine.work import node_macs, weight_storage


@dataclass(frozen=True)
class LayerProfile:
    layer: int
    op: str
    output: str  # shape, e.g. "16x64"
    weights: str  # "dense", "B4 74%" (block-sparse, 74 % of the 4-blocks pruned), or ""
    macs: int  # dense multiply-accumulates (pruned blocks included)
    count: int  # instructions or cycles, as measured
    share: float  # of the whole inference
    macs_per_count: float  # dense MACs per instruction (or cycle); 0 without MACs


def _weights(graph: Graph, index: int) -> str:
    node = graph.nodes[index]
    if node.op not in ("linear", "conv2d"):
        return ""
    storage, block, nonzero = weight_storage(node, graph)
    if storage == "dense":
        return "dense"
    shape = graph.tensors[node.inputs[1]].shape
    rows, cols = shape[0], math.prod(shape[1:])
    pruned = 1 - nonzero / (rows * -(-cols // block))
    return f"B{block} {pruned:.0%}"


def layer_profile(graph: Graph, layer_counts: Sequence[int]) -> list[LayerProfile]:
    """One row per layer of a run of ``graph`` that reported ``layer_counts``."""
    if len(layer_counts) != len(graph.nodes):
        raise ValueError(
            f"the run reported {len(layer_counts)} layers, the model has {len(graph.nodes)}: "
            "is this the model the firmware was built from?"
        )
    total = max(sum(layer_counts), 1)
    rows = []
    for i, (node, count) in enumerate(zip(graph.nodes, layer_counts, strict=True)):
        macs = node_macs(node, graph)
        rows.append(
            LayerProfile(
                layer=i,
                op=node.op,
                output="x".join(map(str, graph.tensors[node.outputs[0]].shape)),
                weights=_weights(graph, i),
                macs=macs,
                count=int(count),
                share=round(count / total, 4),
                macs_per_count=round(macs / count, 3) if macs and count else 0.0,
            )
        )
    return rows
