"""Per-layer profile of a model: what each layer costs in flash, scratch, live arena and MACs,
what the latency model predicts for it, and, after a run, where the instructions (or cycles)
went."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.ir import Graph, Node
from tinyformer.engine.work import node_macs, weight_storage

# A per-layer count prediction (the latency model's), or None when it has none.
Predict = Callable[[Node, Graph], float | None]


@dataclass(frozen=True)
class LayerProfile:
    layer: int
    name: str  # the IR node's
    op: str
    output: str  # shape, e.g. "16x64"
    weights: str  # "dense", "B4 74%" (block-sparse, 74 % of the 4-blocks pruned), or ""
    macs: int  # dense multiply-accumulates (pruned blocks included)
    flash_bytes: int  # the constants the layer's call reads: weights as stored, tables
    scratch_bytes: int  # its kernel's scratch in the arena
    live_bytes: int  # arena in use during the layer (the largest is the plan's lower bound)
    predicted: int | None = None  # the latency model's count, when it has one
    count: int | None = None  # instructions or cycles, as measured
    share: float | None = None  # of the whole inference
    macs_per_count: float | None = None  # dense MACs per instruction (or cycle)


def _weights(node: Node, graph: Graph) -> str:
    if node.op not in ("linear", "conv2d"):
        return ""
    storage, block, nonzero = weight_storage(node, graph)
    if storage == "dense":
        return "dense"
    shape = graph.tensors[node.inputs[1]].shape
    rows, cols = shape[0], math.prod(shape[1:])
    pruned = 1 - nonzero / (rows * -(-cols // block))
    return f"B{block} {pruned:.0%}"


def layer_profile(
    graph: Graph, layer_counts: Sequence[int] | None = None, predict: Predict | None = None
) -> list[LayerProfile]:
    """One row per layer of ``graph``; measured columns from a run's ``layer_counts``."""
    if layer_counts is not None and len(layer_counts) != len(graph.nodes):
        raise ValueError(
            f"the run reported {len(layer_counts)} layers, the model has {len(graph.nodes)}: "
            "is this the model the firmware was built from?"
        )
    plan = plan_graph(graph)
    flash = generate(graph, plan).layer_constant_bytes
    total = max(sum(layer_counts), 1) if layer_counts is not None else 1
    rows = []
    for i, node in enumerate(graph.nodes):
        macs = node_macs(node, graph)
        guess = predict(node, graph) if predict is not None else None
        measured: dict[str, float | int | None] = {}
        if layer_counts is not None:
            count = int(layer_counts[i])
            measured = {
                "count": count,
                "share": round(count / total, 4),
                "macs_per_count": round(macs / count, 3) if macs and count else 0.0,
            }
        rows.append(
            LayerProfile(
                layer=i,
                name=node.name,
                op=node.op,
                output="x".join(map(str, graph.tensors[node.outputs[0]].shape)),
                weights=_weights(node, graph),
                macs=macs,
                flash_bytes=flash[i],
                scratch_bytes=plan.sizes.get(f"{node.name}:scratch", 0),
                live_bytes=plan.live_bytes(i),
                predicted=None if guess is None else round(guess),
                **measured,  # type: ignore[arg-type]
            )
        )
    return rows
