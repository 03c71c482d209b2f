"""layer_profile: the per-layer table of `tinyformer run --layers`, from counts a run reports."""

from __future__ import annotations

import dataclasses

import pytest

from tinyformer.compiler.profile import layer_profile
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.sparse_format import prune_blocks
from tinyformer.engine.storage import encode_weights
from tinyformer.engine.work import graph_macs, node_macs


def test_rows_follow_the_graph_and_add_up() -> None:
    graph = random_hybrid_graph(seed=1)
    first = next(n for n in graph.nodes if n.op == "linear")
    w = graph.tensors[first.inputs[1]]
    graph.tensors[w.name] = dataclasses.replace(w, data=prune_blocks(w.data, 8, 0.75))
    graph = encode_weights(graph)
    counts = [100 * (i + 1) for i in range(len(graph.nodes))]
    rows = layer_profile(graph, counts)
    assert [r.op for r in rows] == [n.op for n in graph.nodes]
    assert [r.count for r in rows] == counts
    assert sum(r.macs for r in rows) == graph_macs(graph)
    assert sum(r.share for r in rows) == pytest.approx(1, abs=1e-3)
    i = graph.nodes.index(first)
    assert rows[i].weights == "B8 75%"
    assert rows[i].macs_per_count == round(node_macs(first, graph) / counts[i], 3)
    assert {r.weights for r in rows if r.op == "layernorm"} == {""}


def test_without_a_run_the_profile_is_the_compile_time_one() -> None:
    graph = random_hybrid_graph(seed=2)
    rows = layer_profile(graph, predict=lambda node, g: 7.0 if node.op == "softmax" else None)
    emitted = sum(int(c.values.nbytes) for c in generate(graph).constants)
    assert sum(r.flash_bytes for r in rows) == emitted
    assert all(r.count is None and r.share is None for r in rows)
    assert {r.predicted for r in rows if r.op == "softmax"} == {7}
    assert {r.predicted for r in rows if r.op != "softmax"} == {None}
    assert any(r.scratch_bytes > 0 for r in rows if r.op == "linear")
    # the arena in use per layer: at least the buffers the layer itself touches (an in-place
    # output shares its input's), and its largest value is the planner's lower bound
    plan = plan_graph(graph)
    for r, node in zip(rows, graph.nodes, strict=True):
        touched = [t for t in (*node.inputs, *node.outputs) if t in plan.offsets]
        own = {plan.offsets[t]: plan.sizes[t] for t in touched}
        assert r.live_bytes >= sum(own.values()) + r.scratch_bytes
    assert max(r.live_bytes for r in rows) == plan.lower_bound


def test_a_run_of_another_model_is_a_clear_error() -> None:
    graph = random_hybrid_graph(seed=0)
    with pytest.raises(ValueError, match=f"reported 2 layers, the model has {len(graph.nodes)}"):
        layer_profile(graph, [1, 2])
