"""The demo model: one int8 fully connected layer with seeded random parameters.

The smallest real model that exercises the whole path: IR -> numpy reference -> C kernel
-> firmware -> target -> measurements. Default shape: 64 tokens x 96 -> 192 features, the
transformer MLP shape of the kernel bench's CMSIS-NN baseline (perf/kernel_bench.py).
"""

from __future__ import annotations

import numpy as np

from tinyformer.engine.graph import Graph, Node, Tensor
from tinyformer.engine.intmath import quantize_multipliers


def demo_graph(
    seed: int = 0, tokens: int = 64, in_features: int = 96, out_features: int = 192
) -> Graph:
    """A seeded random linear layer whose outputs spread over the int8 range."""
    rng = np.random.default_rng(seed)
    # Scale so the accumulator's std (~sqrt(k) * 74 * 74) maps to ~40 output LSBs.
    scale = 40.0 / (np.sqrt(in_features) * 74.0 * 74.0)
    mult, shift = quantize_multipliers(scale * rng.uniform(0.7, 1.3, out_features))
    weights = rng.integers(-128, 128, (out_features, in_features), dtype=np.int8)
    bias = rng.integers(-20000, 20000, out_features, dtype=np.int32)
    input_zp, output_zp = int(rng.integers(-20, 20)), int(rng.integers(-10, 10))
    tensors = {
        "x": Tensor("x", (tokens, in_features), zero_point=input_zp),
        "w": Tensor("w", (out_features, in_features), data=weights),
        "b": Tensor("b", (out_features,), "int32", data=bias),
        "y": Tensor("y", (tokens, out_features), zero_point=output_zp),
    }
    node = Node(
        "linear", "fc", ["x", "w", "b"], ["y"],
        {"input_zp": input_zp, "output_zp": output_zp, "multiplier": mult, "shift": shift},
    )  # fmt: skip
    return Graph(f"demo_fc_{tokens}x{in_features}x{out_features}", tensors, [node], ["x"], ["y"])


def demo_input(graph: Graph, seed: int = 0) -> np.ndarray:
    t = graph.tensors[graph.inputs[0]]
    rng = np.random.default_rng(seed + 1_000_003)
    return rng.integers(-128, 128, t.shape, dtype=np.int8)
