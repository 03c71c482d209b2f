"""The numpy reference interpreter: runs an IR graph with the engine's integer semantics."""

from __future__ import annotations

import dataclasses

import numpy as np

from tinyformer.engine.graph import Graph
from tinyformer.engine.opset import opdef, weights_of


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


def decoded(graph: Graph) -> Graph:
    """``graph`` with its block-sparse weights stored dense. The integer semantics are the
    same (a block-sparse op is the dense op on its decoded weights); running it saves
    decoding every blob again on every run, half of a CIFAR-scale model's reference time."""
    tensors = {
        name: dataclasses.replace(t, data=weights_of(graph, name), encoding=None)
        if t.encoding is not None
        else t
        for name, t in graph.tensors.items()
    }
    return dataclasses.replace(graph, tensors=tensors)


def outputs_many(graph: Graph, xs: np.ndarray) -> np.ndarray:
    """The graph's (first) output for each input of ``xs`` [N, ...], flattened: [N, out]."""
    dense = decoded(graph)
    return np.stack([outputs(dense, x).reshape(-1) for x in xs]).reshape(len(xs), -1)
