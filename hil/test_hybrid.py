"""Whole models on the target: random hybrid conv + transformer graphs, bit for bit.

Every kernel's ARM build (SMLAD/SXTB16 paths the host tests never execute) runs here: the
graphs vary shapes, strides, paddings, zero points and scales, and one wrong byte anywhere
changes the logits.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compile_graph

from tinyformer.engine import ir, reference
from tinyformer.engine.builder import GraphBuilder, random_hybrid_graph
from tinyformer.hil.measure import measure


def _input(graph: ir.Graph, seed: int) -> np.ndarray:
    shape = graph.tensors[graph.inputs[0]].shape
    return np.random.default_rng(seed + 7).integers(-128, 128, shape, dtype=np.int8)


def _assert_runs_match_reference(target, fw, graph: ir.Graph, seed: int, runs: int) -> None:
    """``runs`` inputs (seeded by ``seed``) on the target, each bit-exact with the reference."""
    with target.session(fw) as dev:
        for i in range(runs):
            x = _input(graph, seed * 10 + i)
            out = np.frombuffer(dev.run(x.tobytes()).output, np.int8)
            np.testing.assert_array_equal(out, reference.outputs(graph, x))


def test_hybrid_model_matches_reference_and_predicted_sram(target, tmp_path) -> None:
    graph = random_hybrid_graph(seed=0)
    report, fw, _ = compile_graph(graph, tmp_path, target.board)
    x = _input(graph, 0)
    m = measure(target, fw, x.tobytes())
    out = np.frombuffer(m.output, np.int8)
    np.testing.assert_array_equal(out, reference.outputs(graph, x))
    assert len(m.layer_counts) == len(graph.nodes)
    # a reshape only renames its buffer: it may run no instruction at all
    assert all(c > 0 for c, n in zip(m.layer_counts, graph.nodes, strict=True) if n.op != "reshape")
    # The static call-graph bound is conservative and close: within 2 % of the measurement.
    assert report.predicted_peak_sram_bytes >= m.peak_sram_bytes
    assert report.predicted_peak_sram_bytes <= 1.02 * m.peak_sram_bytes
    assert report.arena_ratio <= 1.05


@pytest.mark.parametrize(
    ("seed", "size", "channels", "width", "dim", "heads", "blocks"),
    [(1, 12, 1, 8, 24, 3, 1), (2, 20, 3, 12, 16, 1, 2), (3, 8, 2, 6, 20, 4, 1)],
)
def test_hybrid_shapes_match_reference(
    target, tmp_path, seed, size, channels, width, dim, heads, blocks
) -> None:
    graph = random_hybrid_graph(seed, size, channels, width, dim, heads, blocks, classes=7)
    _, fw, _ = compile_graph(graph, tmp_path, target.board)
    _assert_runs_match_reference(target, fw, graph, seed, runs=2)


def test_conv_pool_layout_chain_matches_reference(target, tmp_path) -> None:
    """Odd sizes, stride 2 with SAME padding, 5x5 and 1x1 kernels, pooling, transposes."""
    rng = np.random.default_rng(11)
    b = GraphBuilder("chain", rng.integers(-128, 128, (13, 11, 5), dtype=np.int8), seed=11)
    x = b.conv2d("c5", b.input, 12, 5, stride=2, act="relu")
    x = b.depthwise("dw5", x, 5, stride=2)
    x = b.conv2d("pw", x, 9, 1, act="none")
    x = b.avgpool("pool", x, 2, stride=1)
    x = b.transpose("swap", x, (1, 0, 2))
    x = b.depthwise("dw3", x, 3, act="relu")
    graph = b.build(b.global_avgpool("gap", x))
    _, fw, _ = compile_graph(graph, tmp_path, target.board)
    with target.session(fw) as dev:
        for i in range(2):
            x_in = _input(graph, 40 + i)
            out = np.frombuffer(dev.run(x_in.tobytes()).output, np.int8)
            np.testing.assert_array_equal(out, reference.outputs(graph, x_in))


@pytest.mark.parametrize("seed", [0, 1])
def test_block_sparse_model_matches_reference(target, tmp_path, seed) -> None:
    """Every block size in one model: the sparse kernels' ARM paths, bit for bit."""
    from tinyformer.engine.sparse_format import header
    from tinyformer.model import SupernetSpace
    from tinyformer.nas.candidate import config_graph, prunable_layers

    config = SupernetSpace.for_dataset("digits").largest()
    layers = sorted(prunable_layers(config))
    blocks = (1, 2, 4, 8, 16)
    plan = {name: (blocks[(i + seed) % 5], 0.75 if i % 2 else 0.9) for i, name in enumerate(layers)}
    graph = config_graph(config, plan, seed=seed)
    stored = {
        header(graph.tensors[n.inputs[1]].data.tobytes()).block
        for n in graph.nodes
        if n.op in ("linear", "conv2d") and graph.tensors[n.inputs[1]].encoding == "block-rle"
    }
    assert len(stored) >= 3, f"too few block sizes stored sparse: {stored}"
    _, fw, _ = compile_graph(graph, tmp_path, target.board)
    _assert_runs_match_reference(target, fw, graph, seed, runs=3)
