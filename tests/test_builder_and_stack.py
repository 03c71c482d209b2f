"""Graph builder (calibrated random models), IR round trip of every op, stack bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyformer.compiler.stackusage import CallGraph
from tinyformer.engine import ir, reference
from tinyformer.engine.builder import GraphBuilder, random_hybrid_graph
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.opset import OPS


def _chain() -> ir.Graph:
    rng = np.random.default_rng(3)
    b = GraphBuilder("chain", rng.integers(-128, 128, (9, 7, 4), dtype=np.int8), seed=3)
    x = b.conv2d("c", b.input, 6, 3, stride=2)
    x = b.avgpool("p", x, 2, stride=1, padding="same")
    x = b.transpose("t", x, (1, 0, 2))
    return b.build(b.global_avgpool("g", x))


def _imported() -> list[ir.Graph]:
    """The ops only an imported .tflite model has (TFLite's MUL, SUB, CONCATENATION, ...)."""
    from tinyformer.engine.tflite_import import import_tflite_bytes
    from tinyformer.perf.tflite_models import mobilenet, op_mix, resnet8, transformer_block

    models = (op_mix, resnet8, mobilenet, transformer_block)
    return [import_tflite_bytes(model()) for model in models]


def _test_graphs() -> list[ir.Graph]:
    return [random_hybrid_graph(2), _chain(), *_imported()]


def test_test_graphs_cover_every_op() -> None:
    ops = {n.op for g in _test_graphs() for n in g.nodes}
    assert ops == set(OPS)


@pytest.mark.parametrize("seed", [0, 1])
def test_hybrid_activations_use_the_int8_range(seed: int) -> None:
    graph = random_hybrid_graph(seed)
    x = np.random.default_rng(seed).integers(-128, 128, (16, 16, 3), dtype=np.int8)
    values = reference.run(graph, x)
    for node in graph.nodes:
        if node.op in ("softmax", "reshape"):
            continue
        v = values[node.outputs[0]]
        assert v.std() > 8, f"{node.name} output collapsed: std {v.std():.1f}"


def test_ir_round_trip_keeps_every_op(tmp_path: Path) -> None:
    for graph in _test_graphs():
        ir.save(graph, tmp_path / "m.tfir")
        loaded = ir.load(tmp_path / "m.tfir")
        shape = graph.tensors[graph.inputs[0]].shape
        x = np.random.default_rng(5).integers(-128, 128, shape, np.int8)
        np.testing.assert_array_equal(reference.outputs(loaded, x), reference.outputs(graph, x))
        assert generate(loaded).digest() == generate(graph).digest()


def test_hybrid_plan_is_near_the_lower_bound() -> None:
    plan = plan_graph(random_hybrid_graph(0))
    assert plan.lower_bound <= plan.arena_bytes <= 1.05 * plan.lower_bound


CI = """graph: { title: "a.c"
node: { title: "main" label: "main\\na.c:1:1\\n16 bytes (static)" }
node: { title: "run" label: "run\\na.c:2:1\\n8 bytes (static)" }
node: { title: "big" label: "big\\na.c:3:1\\n200 bytes (static)" }
node: { title: "a.c:helper" label: "helper\\na.c:4:1\\n40 bytes (static)" }
node: { title: "memset" label: "memset\\nstring.h:1:1" shape : ellipse }
node: { title: "tick" label: "tick\\na.c:5:1\\n0 bytes (static)" }
edge: { sourcename: "main" targetname: "run" label: "a.c:1:2" }
edge: { sourcename: "main" targetname: "big" label: "a.c:1:3" }
edge: { sourcename: "run" targetname: "a.c:helper" label: "a.c:2:2" }
edge: { sourcename: "a.c:helper" targetname: "memset" }
}
"""


def test_call_graph_bounds(tmp_path: Path) -> None:
    (tmp_path / "obj").mkdir()
    (tmp_path / "obj" / "a.ci").write_text(CI)
    cg = CallGraph.from_build(tmp_path)
    assert cg.worst("main") == 216  # main -> big
    assert cg.worst("run") == 48  # run -> helper -> memset (no frame)
    assert cg.deepest_path_to("main", "run") == 16
    with pytest.raises(ValueError, match="never calls"):
        cg.deepest_path_to("run", "big")


def test_recursion_has_no_static_bound(tmp_path: Path) -> None:
    (tmp_path / "obj").mkdir()
    text = CI.replace('targetname: "memset"', 'targetname: "run"')
    (tmp_path / "obj" / "a.ci").write_text(text)
    with pytest.raises(ValueError, match="recursive"):
        CallGraph.from_build(tmp_path).worst("main")


def test_missing_call_graph_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"\.ci"):
        CallGraph.from_build(tmp_path)
