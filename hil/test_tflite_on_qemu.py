"""Imported .tflite models on the target, bit-exact with TFLite Micro's interpreter: the
firmware built from `compile MODEL.tflite` (TF_ROUNDING_TFLITE, the kernels' generic paths on
ARM, the block-sparse kernels for block-pruned weights) gives the interpreter's outputs on
every element of every input. One firmware build per model. The block-sparse assembly with
TFLite's rounding also runs on a chain of sparse linears over every tile routine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.engine import ir
from tinyformer.engine.graph import Graph, Node, Tensor
from tinyformer.engine.intmath import quantize_multiplier_tflite
from tinyformer.engine.reference import outputs
from tinyformer.engine.sparse_format import encode
from tinyformer.hil.targets.base import Target
from tinyformer.perf.tflite_models import (
    ds_cnn,
    mobilenet,
    op_mix,
    oracle,
    resnet8,
    transformer_block,
)

KERAS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "keras_cnn_int8.tflite"
# ResNet-8 dense runs the conv / FC assembly that hil/test_fc_conv_asm.py checks over its
# grids in TFLite mode: its block-pruned form (the sparse kernels) runs here instead.
MODELS = {
    "resnet8_sparse90": (lambda: resnet8(seed=3, sparsity=0.9), 4),
    "ds_cnn": (ds_cnn, 8),
    "mobilenet": (mobilenet, 8),
    "keras_cnn": (KERAS.read_bytes, 8),
    "op_mix": (op_mix, 8),
    "transformer_block": (transformer_block, 16),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_imported_model_on_target_matches_tflite_micro(
    name: str, target: Target, tmp_path: Path
) -> None:
    make, inputs = MODELS[name]
    model = make()
    (tmp_path / f"{name}.tflite").write_bytes(model)
    compile_model(tmp_path / f"{name}.tflite", tmp_path / "out", board=target.board)
    firmware, graph = firmware_in(tmp_path / "out", target.board)
    if name == "resnet8_sparse90":
        assert any(t.encoding for t in graph.tensors.values()), "no weight stored block-sparse"
    shape = graph.tensors[graph.inputs[0]].shape
    xs = np.random.default_rng(5).integers(-128, 128, (inputs, *shape)).astype(np.int8)
    want = oracle(model, xs)
    with target.session(firmware) as dev:
        got = np.stack([np.frombuffer(dev.run(x.tobytes()).output, np.int8) for x in xs])
    np.testing.assert_array_equal(got, want)


def _sparse_chain(tokens: int = 13, width: int = 44) -> Graph:
    """Five block-sparse linears (B = 1, 2, 4, 8, 16: every tile routine) with TFLite's
    rounding: 13 tokens (an 8-token tile, then five through the one-token routines), empty
    rows, a depth that is no multiple of 16, zero points and fused ranges."""
    rng = np.random.default_rng(0)
    tensors = {"x": Tensor("x", (tokens, width), "int8", 0.05, 3)}
    nodes, prev = [], "x"
    for i, block in enumerate((1, 2, 4, 8, 16)):
        w = rng.integers(-127, 128, (width, width)).astype(np.int8)
        keep = rng.random((width, -(-width // block))) < 0.2
        w = np.where(np.repeat(keep, block, axis=1)[:, :width], w, 0).astype(np.int8)
        w[rng.choice(width, 4, replace=False)] = 0  # empty rows
        name = f"fc{i}"
        blob = np.frombuffer(encode(w, block), np.uint8).copy()
        bias = rng.integers(-3000, 3000, width).astype(np.int32)
        tensors[f"{name}_w"] = Tensor(f"{name}_w", (width, width), data=blob, encoding="block-rle")
        tensors[f"{name}_b"] = Tensor(f"{name}_b", (width,), "int32", data=bias)
        tensors[f"{name}_y"] = Tensor(f"{name}_y", (tokens, width), "int8", 0.05, -2 + i)
        pairs = [quantize_multiplier_tflite(r) for r in rng.uniform(0.3, 3, width) / 400]
        attrs = {"input_zp": 3 if i == 0 else i - 3, "output_zp": i - 2,
                 "multiplier": [m for m, _ in pairs], "shift": [s for _, s in pairs],
                 **({"act_min": -100, "act_max": 90} if i % 2 else {})}  # fmt: skip
        nodes.append(Node("linear", name, [prev, f"{name}_w", f"{name}_b"], [f"{name}_y"], attrs))
        prev = f"{name}_y"
    return Graph("sparse_chain", tensors, nodes, ["x"], [prev], {"rounding": "tflite"})


def test_block_sparse_assembly_with_tflite_rounding(target: Target, tmp_path: Path) -> None:
    graph = _sparse_chain()
    ir.save(graph, tmp_path / "m.tfir")
    compile_model(tmp_path / "m.tfir", tmp_path / "out", board=target.board)
    firmware, _ = firmware_in(tmp_path / "out", target.board)
    xs = np.random.default_rng(1).integers(-128, 128, (3, 13, 44)).astype(np.int8)
    with target.session(firmware) as dev:
        for x in xs:
            got = np.frombuffer(dev.run(x.tobytes()).output, np.int8).reshape(13, 44)
            want = outputs(graph, x)
            assert len(np.unique(want)) > 30
            np.testing.assert_array_equal(got, want)
