"""The CIFAR-10 path at its scale (32x32x3 inputs, 10 classes) on the target, as a user runs it.

The real CIFAR-10 cannot be fetched here, so the data is the stand-in of
``tinyformer.data.cifar_standin``, handed over as the downloaded ``cifar-10-python.tar.gz``.
A small model of the CIFAR-10 shape is trained (a short schedule), compiled, run and
evaluated through the CLI, and a short ``search --dataset cifar10`` runs on SuperNAS's
CIFAR-10 spaces. Then a model that fills the board: the largest subnet of the space SuperNAS
picks, at 75 % block sparsity, bit-exact, its predicted peak SRAM within 2 % of the measured
one; an int32 accumulator at its edge; a search over candidates that cannot fit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyformer.boards import RAM_BUDGET
from tinyformer.compiler.driver import compile_model, firmware_in
from tinyformer.data.cifar_standin import write_standin
from tinyformer.engine import ir
from tinyformer.engine.demo import demo_graph
from tinyformer.engine.graph import Graph, IRFormatError, Tensor
from tinyformer.engine.intmath import INT32_MAX, quantize_multipliers
from tinyformer.engine.reference import outputs
from tinyformer.engine.validate import check_graph
from tinyformer.hil.measure import measure
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.nas.candidate import config_graph, prunable_layers
from tinyformer.nas.supernas import candidate_spaces
from tinyformer.prune import DEFAULT_SKIP, SparsityPlan

CLI = [sys.executable, "-m", "tinyformer.cli"]
# The CIFAR-10 shape, small enough to learn in seconds: a stride-2 stem (32 -> 16), a 5x5
# MBConv stage (-> 8x8) and a transformer stage on 2x2 patches (16 tokens).
SMALL = {
    "image_size": 32, "in_channels": 3, "num_classes": 10, "stem_width": 8, "stem_stride": 2,
    "stages": [
        {"kind": "mbconv", "depth": 1, "width": 16, "kernel_size": 5, "expand_ratio": 2,
         "stride": 2},
        {"kind": "transformer", "depth": 1, "width": 32, "heads": 1, "mlp_ratio": 1,
         "head_dim": 32, "patch_size": 2},
    ],
}  # fmt: skip


def _cli(args: list[str], cwd: Path, timeout: int = 300) -> dict:
    proc = subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1]) if "--json" in args else {}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_standin(
        tmp_path_factory.mktemp("cifar"), per_batch=100, test_count=30, archive=True
    )


def test_cifar10_train_compile_run_evaluate(pytestconfig, archive: Path, tmp_path: Path) -> None:
    target = ["--target", pytestconfig.getoption("--target")]
    data = ["--dataset", "cifar10", "--root", str(archive)]
    trained = _cli(
        ["train", *data, "--config", json.dumps(SMALL), "-o", "m", "--no-progress", "--json",
         "--epochs", "5", "--prune-epochs", "1", "--finetune-epochs", "1", "--qat-epochs", "1",
         "--sparsity", "0.5"],
        tmp_path,
    )  # fmt: skip
    assert trained["float_test_acc"] >= 0.3  # the stand-in is learnable: chance is 0.1
    assert trained["agreement"] == 1.0  # the exported int8 file = the QAT model
    report = _cli(["compile", "m/model.tfir", "-o", "fw", "--json"], tmp_path)
    assert report["layers"] > 10
    run = _cli(["run", "fw", *target, "--json"], tmp_path)
    assert run["matches_reference"] is True
    acc = _cli(["evaluate", "fw", *data, *target, "--json"], tmp_path)
    assert acc["images"] == 30 and acc["agreement"] == 1.0 and acc["bit_exact"] == 1.0
    assert acc["reference_accuracy"] == pytest.approx(trained["reference_acc"])


def test_cifar10_search(pytestconfig, archive: Path, tmp_path: Path) -> None:
    """A short search on SuperNAS's CIFAR-10 spaces, from the downloaded archive."""
    _cli(
        ["search", "--dataset", "cifar10", "--root", str(archive),
         "--target", pytestconfig.getoption("--target"), "-o", "s", "--supernet-epochs", "0",
         "--population", "2", "--generations", "1", "--top-k", "1", "--space-samples", "1"],
        tmp_path,
    )  # fmt: skip
    chosen = json.loads((tmp_path / "s" / "supernas.json").read_text())
    assert chosen["chosen"].startswith("cifar10-w")
    assert (chosen["space"]["image_size"], chosen["space"]["in_channels"]) == (32, 3)
    picked = json.loads((tmp_path / "s" / "search" / "chosen" / "candidate.json").read_text())
    assert picked["measured"] > 1e6 and picked["flash_bytes"] <= 1024 * 1024
    # what `train` takes to train the winner (README: the CIFAR-10 recipe)
    config = SubnetConfig.load(tmp_path / "s" / "search" / "chosen" / "config.json")
    assert config.to_dict() == picked["candidate"]["config"]
    SparsityPlan.load(tmp_path / "s" / "search" / "chosen" / "plan.json")


def test_board_filling_cifar10_model_is_bit_exact(target, tmp_path: Path) -> None:
    """The largest subnet of the space SuperNAS picks for CIFAR-10 (cifar10-w1-deep: 8
    samples per space, seed 0) at 75 % block sparsity: 62 % of the flash, 70 % of the SRAM,
    ~62 M instructions (the run timeout's pessimistic count covers it)."""
    base = SupernetSpace.for_dataset("cifar10")
    space = next(s for s in candidate_spaces(base) if s.name == "cifar10-w1-deep")
    largest = space.largest()
    plan = {k: (4, 0.75) for k in prunable_layers(largest) if k not in DEFAULT_SKIP}
    graph = config_graph(largest, plan)
    report = compile_model(ir.save(graph, tmp_path / "m.tfir"), tmp_path / "fw", target.board)
    fw, graph = firmware_in(tmp_path / "fw", target.board)
    x = np.random.default_rng(0).integers(-128, 128, graph.tensors[graph.inputs[0]].shape)
    m = measure(target, fw, x.astype(np.int8).tobytes())
    expected = outputs(graph, x.astype(np.int8))
    assert np.array_equal(np.frombuffer(m.output, np.int8).reshape(expected.shape), expected)
    measured = report.static_ram_bytes + m.stack_bytes
    assert 150 * 1024 <= measured <= RAM_BUDGET
    assert abs(report.predicted_peak_sram_bytes - measured) <= 0.02 * measured
    assert report.flash_bytes > 600 * 1024
    assert fw.expected_count is not None and m.total < fw.expected_count


def _accumulator_edge(k: int, out: int, over: int) -> Graph:
    """A linear whose int32 accumulator reaches 2**31 - 1 + ``over`` on an input of -128s:
    input_zp 127 and weights -128 make each product +32,640, the bias supplies the rest."""
    graph = demo_graph(0, tokens=1, in_features=k, out_features=out)
    node = graph.nodes[0]
    bias = INT32_MAX + over - k * 255 * 128
    graph.tensors["w"] = Tensor("w", (out, k), data=np.full((out, k), -128, np.int8))
    graph.tensors["b"] = Tensor("b", (out,), "int32", data=np.full(out, bias, np.int32))
    graph.tensors["x"] = Tensor("x", (1, k), zero_point=127)
    graph.tensors["y"] = Tensor("y", (1, out), zero_point=0)
    mult, shift = quantize_multipliers(np.full(out, 100 / 2**31))  # 2**31 - 1 -> 100
    node.attrs.update(input_zp=127, output_zp=0, multiplier=mult, shift=shift)
    return graph


def test_int32_accumulator_and_32_bit_offsets_at_the_edge(build_firmware, target) -> None:
    """Validation's accumulator bound is exact: a sum of exactly 2**31 - 1 runs bit-exactly
    (a wrap would give -128), one more is refused in one line. The 800 KB weight blob and its
    20,000-byte rows take the kernel's offsets far past 16 bits."""
    with pytest.raises(IRFormatError, match=r"accumulator reaches 2,147,483,648 .* over 2\*\*31"):
        check_graph(_accumulator_edge(20_000, 40, over=1))
    graph = _accumulator_edge(20_000, 40, over=0)
    check_graph(graph)
    x = np.full((1, 20_000), -128, np.int8)
    expected = outputs(graph, x)
    assert (expected == 100).all()  # 2**31 - 1 requantized; a wrapped sum would give -128
    m = measure(target, build_firmware(graph), x.tobytes())
    assert np.array_equal(np.frombuffer(m.output, np.int8).reshape(expected.shape), expected)


def test_search_marks_over_budget_candidates_infeasible(target, tmp_path: Path) -> None:
    """A space half of whose members cannot fit (a 320-channel stem at 32x32 needs a 320 KB
    activation): the search evaluates them as infeasible, with what they need, measures only
    the others, and picks among them although the fitness prefers the big ones."""
    from driver import fitness

    from tinyformer.model.blocks.mbconv import MBConvStageSpace
    from tinyformer.nas.search import SearchSettings, SparseNAS

    space = SupernetSpace(
        name="cifar10-overflowing", image_size=32, in_channels=3, num_classes=10,
        stem_widths=(8, 320), stem_kernel=3,
        stages=(MBConvStageSpace((1,), (16,), (3,), (2,), stride=2),),
    )  # fmt: skip
    settings = SearchSettings(space=space.to_dict(), population=4, generations=1, top_k=2, seed=3)
    nas = SparseNAS(settings, fitness, target, tmp_path / "s", tmp_path / "r")
    state = nas.run()
    over = [e for e in state.evaluated.values() if e.candidate["config"]["stem_width"] == 320]
    fits = [e for e in state.evaluated.values() if e not in over]
    assert over and fits
    assert all(e.peak_sram_bytes > RAM_BUDGET and e.measured is None for e in over)
    assert not any(nas.feasible(e) for e in over)
    assert nas.best(state).candidate["config"]["stem_width"] == 8
