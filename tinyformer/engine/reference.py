"""The numpy reference interpreter: runs an IR graph with the engine's integer semantics."""

from __future__ import annotations

import numpy as np

from tinyformer.engine.graph import Graph
from tinyformer.engine.opset import opdef


def run(graph: Graph, inputs: dict[str, np.ndarray] | np.ndarray) -> dict[str, np.ndarray]:
    """All tensors' values after running ``graph`` (a single array feeds the one input)."""
    if isinstance(inputs, np.ndarray):
        inputs = {graph.inputs[0]: inputs}
    values: dict[str, np.ndarray] = {}
    for name in graph.inputs:
        t = graph.tensors[name]
        x = np.asarray(inputs[name])
        if x.dtype != np.dtype(t.dtype) or x.shape != tuple(t.shape):
            raise ValueError(
                f"input {name!r} must be {t.dtype} {tuple(t.shape)}, got {x.dtype} {x.shape}"
            )
        values[name] = x
    for node in graph.nodes:
        ins = [values[t] if t in values else graph.tensors[t].const for t in node.inputs]
        outs = opdef(node.op).reference(node, graph, ins)
        values.update(zip(node.outputs, outs, strict=True))
    return values


def outputs(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The graph's (first) output for input ``x``."""
    return run(graph, x)[graph.outputs[0]]
