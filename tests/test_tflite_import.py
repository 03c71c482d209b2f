"""The .tflite importer against TFLite Micro's own interpreter (the oracle): the numpy
reference and the C kernels built for the host (TF_ROUNDING_TFLITE, from the model's
tf_model_config.h) give its outputs bit for bit over many random inputs, for MLPerf Tiny's
ResNet-8 and DS-CNN shapes, a MobileNet-style stack, a block-pruned ResNet-8 (stored
block-sparse) and a Keras CNN converted by TensorFlow's converter. Bad files are one line.
QEMU runs the same models in hil/test_tflite_on_qemu.py."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
from typer.testing import CliRunner

from tinyformer.cli import app
from tinyformer.engine import ir
from tinyformer.engine.codegen import generate
from tinyformer.engine.reference import outputs, run
from tinyformer.engine.tflite_import import TFLiteImportError, import_tflite, import_tflite_bytes
from tinyformer.perf.tflite_models import MODELS, Builder, fb, oracle, resnet8

ROOT = Path(__file__).resolve().parents[1]
KERNELS = ROOT / "firmware" / "kernels"
KERAS = Path(__file__).parent / "fixtures" / "keras_cnn_int8.tflite"
INPUTS = 40

MAIN_C = r"""
#include <stdio.h>
#include "tf_model.h"
void tf_layer_done(uint16_t layer) { (void)layer; }
int main(void)
{
    while (fread(tf_model_input(), 1, tf_model_info.input_bytes, stdin) ==
           tf_model_info.input_bytes) {
        tf_model_run();
        fwrite(tf_model_output(), 1, tf_model_info.output_bytes, stdout);
    }
    return 0;
}
"""


def _models() -> dict[str, bytes]:
    models = {name: make() for name, make in MODELS.items()}
    models["resnet8_sparse90"] = resnet8(seed=3, sparsity=0.9)
    models["keras_cnn"] = KERAS.read_bytes()
    return models


MODEL_BYTES = _models()


def _inputs(graph: ir.Graph, n: int, seed: int = 1) -> np.ndarray:
    shape = graph.tensors[graph.inputs[0]].shape
    return np.random.default_rng(seed).integers(-128, 128, (n, *shape)).astype(np.int8)


FLAGS = ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module")
def kernels_tflite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every kernel built once with the host gcc, under an imported model's build switches
    (tf_model_config.h: TF_ROUNDING_TFLITE 1): the portable C of the firmware's kernels."""
    work = tmp_path_factory.mktemp("kernels")
    graph = import_tflite(KERAS)
    generate(graph).write(work)  # its tf_model_config.h, as every imported model's
    objects = []
    for src in sorted(KERNELS.glob("*.c")):
        obj = work / f"{src.stem}.o"
        cmd = ["gcc", *FLAGS, f"-I{work}", f"-I{KERNELS}", "-c", str(src), "-o", str(obj)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        objects.append(str(obj))
    subprocess.run(["ar", "rcs", str(work / "libk.a"), *objects], check=True)
    assert "TF_ROUNDING_TFLITE 1" in (work / "tf_model_config.h").read_text()
    return work / "libk.a"


def _host_app(graph: ir.Graph, work: Path, kernels: Path) -> Path:
    """The generated model.c linked with the host-built kernels."""
    generate(graph).write(work)
    (work / "main.c").write_text(MAIN_C)
    includes = [f"-I{work}", f"-I{KERNELS}", f"-I{ROOT / 'firmware' / 'common'}"]
    sources = [str(work / "model.c"), str(work / "main.c"), str(kernels)]
    cmd = ["gcc", *FLAGS, *includes, *sources, "-lm", "-o", str(work / "app")]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return work / "app"


@pytest.mark.parametrize("name", list(MODEL_BYTES))
def test_reference_and_host_kernels_match_tflite_micro(
    name: str, tmp_path: Path, kernels_tflite: Path
) -> None:
    model = MODEL_BYTES[name]
    graph = import_tflite_bytes(model, name)
    assert graph.meta["rounding"] == "tflite"
    xs = _inputs(graph, INPUTS)
    want = oracle(model, xs)
    assert len(np.unique(want)) >= 6, "outputs too uniform to test anything"
    ref = np.stack([outputs(graph, x).reshape(-1) for x in xs])
    np.testing.assert_array_equal(ref, want)
    app_ = _host_app(graph, tmp_path, kernels_tflite)
    run = subprocess.run([str(app_)], input=xs.tobytes(), capture_output=True, check=True)
    np.testing.assert_array_equal(np.frombuffer(run.stdout, np.int8).reshape(want.shape), want)


def test_block_pruned_weights_are_stored_sparse_and_dense_ones_dense() -> None:
    dense = import_tflite_bytes(MODEL_BYTES["resnet8"])
    sparse = import_tflite_bytes(MODEL_BYTES["resnet8_sparse90"])
    weighted = [n.inputs[1] for n in dense.nodes if n.op in ("conv2d", "linear")]
    assert all(dense.tensors[w].encoding is None for w in weighted)
    encoded = [
        n
        for n in sparse.nodes
        if n.op in ("conv2d", "linear") and sparse.tensors[n.inputs[1]].encoding
    ]
    assert len(encoded) >= len(weighted) // 2  # the big layers; tiny ones may stay dense


def test_the_engine_rounding_would_not_match() -> None:
    """The double rounding is what makes the outputs match: the same graph with the engine's
    own rounding differs from TFLite Micro (so the tests above can fail)."""
    model = MODEL_BYTES["mobilenet"]  # no softmax: its TFLite table needs TFLite's kernel
    graph = import_tflite_bytes(model)
    xs = _inputs(graph, 10)
    graph.meta["rounding"] = "single"
    single = np.stack([outputs(graph, x).reshape(-1) for x in xs])
    assert np.any(single != oracle(model, xs))


def test_saved_ir_keeps_the_semantics(tmp_path: Path) -> None:
    graph = import_tflite(KERAS)
    ir.save(graph, tmp_path / "m.tfir")
    again = ir.load(tmp_path / "m.tfir")
    x = _inputs(graph, 1)[0]
    assert again.meta["rounding"] == "tflite"
    np.testing.assert_array_equal(outputs(again, x), outputs(graph, x))
    graph.meta["rounding"] = "tflite2"
    with pytest.raises(ir.IRFormatError, match=r"meta\.rounding"):
        ir.save(graph, tmp_path / "bad.tfir")


# -- refused, in one line ---------------------------------------------------------------------


def _tiny(dtype: int = fb.TensorType.INT8, op: int = fb.BuiltinOperator.SOFTMAX) -> bytes:
    """input [1, 8] -> one op -> output, of the given activation type."""
    q = me.Quantization(scales=0.05, zero_points=0)
    x = me.Tensor(shape=(1, 8), dtype=dtype, quantization=q)
    y = me.Tensor(shape=(1, 8), dtype=dtype, quantization=me.Quantization(1 / 256, -128))
    o = me.Operator(opcode=op, inputs=[x], outputs=[y])
    sg = me.Subgraph(tensors=[x, y], operators=[o], inputs=[x], outputs=[y])
    return bytes(me.Model(subgraphs=[sg]).build())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"hello, not a model", "is not a TFLite model"),
        (MODEL_BYTES["ds_cnn"][:200], "damaged|malformed"),
        (_tiny(fb.TensorType.FLOAT32), "float32: only int8"),
        (_tiny(fb.TensorType.INT16), "int16: only int8 activations"),
        (_tiny(op=fb.BuiltinOperator.EXP), r"operator 0 \(EXP\) is not supported"),
    ],
    ids=["not-tflite", "truncated", "float", "int16", "unsupported-op"],
)
def test_bad_models_are_one_clear_line(data: bytes, message: str) -> None:
    with pytest.raises(TFLiteImportError, match=message) as info:
        import_tflite_bytes(data)
    assert "\n" not in str(info.value)


def test_damaged_bytes_never_escape_as_a_traceback() -> None:
    model = bytearray(MODEL_BYTES["mobilenet"])
    rng = np.random.default_rng(0)
    for _ in range(60):
        bad = bytearray(model)
        for i in rng.integers(8, len(bad), 6):
            bad[i] = int(rng.integers(0, 256))
        try:
            import_tflite_bytes(bytes(bad))
        except TFLiteImportError as exc:
            assert "\n" not in str(exc)


def test_cli_import_writes_the_ir_and_refuses_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "keras.tfir"
    result = runner.invoke(app, ["import", str(KERAS), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert ir.load(out).meta["rounding"] == "tflite"
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(_tiny(op=fb.BuiltinOperator.EXP))
    result = runner.invoke(app, ["import", str(bad), "-o", str(tmp_path / "b.tfir")])
    assert result.exit_code == 1
    assert "operator 0 (EXP) is not supported" in result.output
    assert "Traceback" not in result.output


def test_builder_quantizes_realistically() -> None:
    """The test models' activations use int8's range (not a few values near zero)."""
    graph = import_tflite_bytes(MODEL_BYTES["resnet8"])
    values = run(graph, _inputs(graph, 1)[0])
    convs = [n.outputs[0] for n in graph.nodes if n.op == "conv2d"]
    assert all(np.ptp(values[t].astype(int)) > 100 for t in convs)


def test_quantize_and_dequantize_at_the_edges_are_dropped() -> None:
    """float in -> QUANTIZE -> ... -> DEQUANTIZE -> float out: the engine takes and gives
    the int8 tensors in between, and matches the interpreter fed the same values."""
    b = Builder(seed=7)
    x = b.input((8, 8, 4), 0.05, 3)
    y = b.conv(x, 8, 3)
    xf = me.Tensor(shape=(1, 8, 8, 4), dtype=fb.TensorType.FLOAT32)
    yf = me.Tensor(shape=y.shape, dtype=fb.TensorType.FLOAT32)
    b.sg.tensors += [xf, yf]
    b.sg.inputs[:] = [xf]
    b.sg.operators.insert(
        0, me.Operator(opcode=fb.BuiltinOperator.QUANTIZE, inputs=[xf], outputs=[x])
    )
    b.op(fb.BuiltinOperator.DEQUANTIZE, [y], [yf])
    model = b.build(yf)
    graph = import_tflite_bytes(model)
    assert [n.op for n in graph.nodes] == ["conv2d"]
    assert graph.tensors[graph.inputs[0]].dtype == "int8"
    (s_in, zp_in), (s_out, zp_out) = b.q(x), b.q(y)
    xs = _inputs(graph, 10)
    floats = ((xs.astype(np.float32) - zp_in) * np.float32(s_in)).astype(np.float32)
    want = np.round(oracle(model, floats) / np.float32(s_out)) + zp_out
    got = np.stack([outputs(graph, q).reshape(-1) for q in xs])
    np.testing.assert_array_equal(got, want)


HARD_SWISH, RSQRT, TANH = (fb.BuiltinOperator.HARD_SWISH, fb.BuiltinOperator.RSQRT,
                           fb.BuiltinOperator.TANH)  # fmt: skip


@pytest.mark.parametrize(
    ("op", "scale", "zp", "out_scale", "out_zp"),
    [
        (HARD_SWISH, 0.05, 3, 0.03, -100),
        (HARD_SWISH, 0.2, -20, 0.2, -60),
        (HARD_SWISH, 0.01, 0, 1.5, -120),  # int16 mask wrap: -120 below 0, -119 from 0 on
        (HARD_SWISH, 0.5, 100, 0.004, 0),
        (RSQRT, 0.05, -128, 0.03, -100),
        (RSQRT, 0.001, -128, 0.5, -128),
        (RSQRT, 3.0, -128, 0.001, -128),
        (TANH, 0.05, 3, 1 / 128, 0),
        (TANH, 0.2, 100, 1 / 128, 0),
        (TANH, 0.002, 0, 1 / 128, 0),
    ],
)
def test_per_value_ops_are_tflite_micros_tables_on_every_input(
    op: int, scale: float, zp: int, out_scale: float, out_zp: int
) -> None:
    """HARD_SWISH, RSQRT and TANH run as tables: all 256 inputs, at scales that take their
    shift and saturation paths, against the interpreter."""
    b = Builder()
    x = b.input((256,), scale, zp)
    y = b.act(b.real[id(x)], out_scale, out_zp, shape=x.shape)
    b.op(op, [x], [y])
    model = b.build(y)
    xs = np.arange(-128, 128, dtype=np.int8)[None]
    want = oracle(model, xs)
    assert len(np.unique(want)) >= 2
    np.testing.assert_array_equal(outputs(import_tflite_bytes(model), xs[0]), want[0])


def _concat_of_two_quantizations() -> bytes:
    b = Builder()
    x = b.input((4, 8), 0.05, 3)
    return b.build(b.concat([x, b.hard_swish(x)], axis=1))


def _two_constants() -> bytes:
    b = Builder()
    x = b.input((4, 8), 0.05, 3)
    return b.build(b.add_to(x, b.sub(b.constant(np.ones(8)), b.constant(np.ones(8)))))


def _hard_swish_of_a_huge_scale() -> bytes:
    """TFLite Micro would shift by 32 (undefined in C++; x86 and ARM differ)."""
    b = Builder()
    x = b.input((8,), 5e7, 0)
    return b.build(b.hard_swish(x))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_concat_of_two_quantizations, r"operator 1 \(CONCATENATION\): concatenating changes"),
        (_two_constants, r"operator 0 \(SUB\): both inputs are constants"),
        (_hard_swish_of_a_huge_scale, r"operator 0 \(HARD_SWISH\): .* is too large"),
    ],
    ids=["concat-quantization", "two-constants", "hard-swish-shift"],
)
def test_new_ops_refuse_what_they_cannot_run_in_one_line(
    make: Callable[[], bytes], message: str
) -> None:
    with pytest.raises(TFLiteImportError, match=message) as info:
        import_tflite_bytes(make())
    assert "\n" not in str(info.value)
