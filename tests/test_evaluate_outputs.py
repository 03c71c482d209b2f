"""What evaluate computes on the host: the reference over many images, the data check, the
confusion matrix and the figures people read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tinyformer.engine import reference
from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.engine.intmath import int_matmul
from tinyformer.engine.ir import Graph
from tinyformer.engine.sparse_format import prune_blocks
from tinyformer.engine.storage import encode_weights
from tinyformer.hil.accuracy import ImageRuns, accuracy_of, check_data
from tinyformer.hil.errors import DataMismatch


def _sparse_hybrid() -> Graph:
    graph = random_hybrid_graph(seed=1)
    for node in graph.nodes:
        if node.op in ("linear", "conv2d"):
            w = graph.tensors[node.inputs[1]]
            pruned = prune_blocks(w.const, 4, 0.75)
            graph.tensors[w.name] = dataclasses.replace(w, data=pruned)
            node.attrs["block"] = 4
    return encode_weights(graph)


def test_outputs_many_decodes_once_and_gives_each_image_s_output() -> None:
    graph = _sparse_hybrid()
    assert any(t.encoding == "block-rle" for t in graph.tensors.values())
    assert all(t.encoding is None for t in reference.decoded(graph).tensors.values())
    shape = graph.tensors[graph.inputs[0]].shape
    x = np.random.default_rng(0).integers(-128, 128, (3, *shape), dtype=np.int8)
    one_by_one = np.stack([reference.outputs(graph, image).reshape(-1) for image in x])
    np.testing.assert_array_equal(reference.outputs_many(graph, x), one_by_one)


def test_data_of_another_shape_or_class_count_is_refused() -> None:
    graph = random_hybrid_graph(seed=0, size=16, channels=3, classes=10)
    check_data(graph, (16, 16, 3), 10, "the data")
    with pytest.raises(DataMismatch, match="the data has 8x8x1 images, the model takes 16x16x3"):
        check_data(graph, (8, 8, 1), 10, "the data")
    with pytest.raises(DataMismatch, match="the data has 2 classes, the model has 10 outputs"):
        check_data(graph, (16, 16, 3), 2, "the data")


def test_confusion_matrix_and_percentages() -> None:
    logits = np.full((4, 3), -100, np.int8)
    logits[np.arange(4), [0, 1, 1, 2]] = 100  # predictions 0 1 1 2
    runs = ImageRuns(logits, logits.copy(), np.array([10, 6, 6, 6]), 96)  # a cold first run
    acc = accuracy_of(runs, np.array([0, 1, 2, 2]))
    assert acc.confusion == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]  # [true][predicted]
    assert acc.accuracy == 0.75 and acc.bit_exact == 1.0 and acc.count_per_inference == 10
    assert acc.mean_count_per_inference == 7.0
    shown = acc.display()
    assert shown["accuracy"] == "75.00 %" and shown["agreement"] == "100.00 %"
    assert shown["images"] == 4 and "confusion" not in shown
    assert shown["mean_count_per_inference"] == "7"  # a count, not a percentage
    with pytest.raises(DataMismatch, match=r"class indices 0\.\.2"):
        accuracy_of(runs, np.array([0, 1, 2, 3]))


def test_int_matmul_is_exact_at_the_extremes() -> None:
    rng = np.random.default_rng(0)
    a = rng.choice([-255, 255, 254, -1], (7, 8191)).astype(np.int64)
    b = rng.choice([-128, 127, 1], (8191, 5)).astype(np.int64)
    np.testing.assert_array_equal(int_matmul(a, b), a @ b)
    worst = int_matmul(np.full((1, 8191), 255), np.full((8191, 1), -128))
    assert worst.dtype == np.int64 and worst[0, 0] == 255 * -128 * 8191
