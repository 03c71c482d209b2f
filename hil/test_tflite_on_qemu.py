"""Imported .tflite models on the target, bit-exact with TFLite Micro's interpreter: the
firmware built from `compile MODEL.tflite` (TF_ROUNDING_TFLITE, the kernels' generic paths on
ARM, the block-sparse kernels for block-pruned weights) gives the interpreter's outputs on
every element of every input. One firmware build per model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.hil.targets.base import Target
from tinyformer.perf.tflite_models import ds_cnn, mobilenet, oracle, resnet8

KERAS = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "keras_cnn_int8.tflite"
# ResNet-8 dense runs the conv / FC assembly that hil/test_fc_conv_asm.py checks over its
# grids in TFLite mode: its block-pruned form (the sparse kernels) runs here instead.
MODELS = {
    "resnet8_sparse90": (lambda: resnet8(seed=3, sparsity=0.9), 4),
    "ds_cnn": (ds_cnn, 8),
    "mobilenet": (mobilenet, 8),
    "keras_cnn": (KERAS.read_bytes, 8),
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
