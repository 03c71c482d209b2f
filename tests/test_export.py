"""Export: a small trained, pruned QAT model -> IR file; the reference interpreter reproduces
the QAT model's integer logits exactly; checkpoints re-export identically; the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_prune import tiny_config  # tests/ is on sys.path (conftest.py)
from typer.testing import CliRunner

from tinyformer.cli import app
from tinyformer.data import load_dataset
from tinyformer.engine import ir, sparse_format
from tinyformer.engine.opset import weights_of
from tinyformer.engine.validate import check_graph
from tinyformer.model import Subnet
from tinyformer.prune import SparsityPlan
from tinyformer.quant import QuantSubnet, to_graph
from tinyformer.quant.checkpoint import load_qat
from tinyformer.quant.evaluate import reference_logits
from tinyformer.quant.pipeline import PipelineConfig, export_checkpoint, run_pipeline

CONTRACT = {
    "conv2d": {"input_zp", "output_zp", "multiplier", "shift", "stride", "padding", "act_min",
               "act_max"},
    "depthwise_conv2d": {"input_zp", "output_zp", "multiplier", "shift", "stride", "padding",
                         "act_min", "act_max"},
    "linear": {"input_zp", "output_zp", "multiplier", "shift", "act_min", "act_max"},
    "add": {"input1_zp", "input1_multiplier", "input1_shift", "input2_zp", "input2_multiplier",
            "input2_shift", "output_zp", "output_multiplier", "output_shift", "left_shift",
            "act_min", "act_max"},
    "layernorm": {"eps", "output_zp"},
    "softmax": set(),
    "lut": set(),
    "matmul_qk": {"heads", "q_zp", "k_zp", "multiplier", "shift", "output_zp"},
    "matmul_av": {"heads", "attn_zp", "v_zp", "multiplier", "shift", "output_zp"},
    "global_avgpool": {"act_min", "act_max"},
    "reshape": set(),
}  # fmt: skip


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny subnet trained a few epochs, pruned to 50 % (B = 4), QAT'd and exported."""
    out = tmp_path_factory.mktemp("tiny")
    cfg = PipelineConfig(
        config=tiny_config(), epochs=8, lr=1e-2, prune_epochs=2, finetune_epochs=1,
        qat_epochs=2, sparsity=0.5, block=4, num_threads=1,
    )  # fmt: skip
    return run_pipeline(out, cfg)


def test_pipeline_writes_everything_and_agrees(trained):
    for name in ("subnet", "plan", "config", "qat", "model", "metrics", "history"):
        assert trained.paths[name].exists(), name
    m = json.loads(trained.paths["metrics"].read_text())
    assert m["agreement"] == 1.0 and m["exact_logits"] == 1.0
    assert m["reference_acc"] == m["qat_test_acc"]
    assert m["agreement_fake_quant"] >= 0.95
    assert m["weight_bytes_stored"] < m["weight_bytes_dense"]
    assert {row["phase"] for row in trained.history} == {"float", "prune", "qat"}


def test_graph_follows_the_ir_contract(trained, tmp_path):
    graph = ir.load(trained.paths["model"])
    check_graph(graph)
    x = graph.tensors["input"]
    assert (x.shape, x.dtype, x.zero_point) == ((8, 8, 1), "int8", -128)
    assert x.scale == pytest.approx(1 / 255)
    assert graph.nodes[-1].name == "classifier"
    assert graph.tensors[graph.outputs[0]].shape == (10,)
    for node in graph.nodes:
        assert node.op in CONTRACT, node.op
        assert CONTRACT[node.op] <= set(node.attrs), (node.name, set(node.attrs))
        for t in node.outputs:
            assert graph.tensors[t].dtype == "int8"
    softmax = [n for n in graph.nodes if n.op == "softmax"]
    assert softmax and all(graph.tensors[n.outputs[0]].scale == 1 / 256 for n in softmax)
    meta = graph.meta
    assert meta["config"] == tiny_config().to_dict()
    assert SparsityPlan.from_dict(meta["sparsity_plan"]) == SparsityPlan.load(trained.paths["plan"])
    assert "qat_test_acc" in meta["accuracy"]
    again = ir.load(ir.save(graph, tmp_path / "copy.tfir"))
    assert ir.digest(again) == ir.digest(graph)


def test_pruned_blocks_survive_qat_and_export(trained):
    graph = ir.load(trained.paths["model"])
    plan = SparsityPlan.load(trained.paths["plan"])
    nodes = {n.name: n for n in graph.nodes}
    assert len(plan) > 0
    for name, spec in plan.items():
        node = nodes[name]
        assert node.attrs["block"] == spec.block
        w = weights_of(graph, node.inputs[1]).reshape(graph.tensors[node.inputs[1]].shape[0], -1)
        mask = sparse_format.block_mask(w, spec.block)
        assert (~mask).sum() >= round(spec.sparsity * mask.size), name
    assert any(t.encoding == "block-rle" for t in graph.tensors.values())


def test_reference_reproduces_the_qat_model(trained, digits):
    model = load_qat(trained.paths["qat"])
    graph = ir.load(trained.paths["model"])
    images = digits.test.images[:48]
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    codes, (scale, _) = model.int_logits(x)
    ref = reference_logits(graph, images)
    np.testing.assert_array_equal(codes.numpy(), ref.astype(np.int64))
    with torch.no_grad():
        logits = model(x)
    np.testing.assert_array_equal(logits.argmax(1).numpy(), ref.argmax(1))
    assert len(set(ref.argmax(1).tolist())) >= 3  # a trained model, not a constant one
    assert graph.tensors[graph.outputs[0]].scale == scale


def test_checkpoint_reexports_identically(trained, tmp_path):
    graph = export_checkpoint(trained.paths["qat"], tmp_path / "again.tfir")
    assert ir.digest(graph) == ir.digest(ir.load(trained.paths["model"]))


def test_float_subnet_exports_after_post_training_calibration(trained, tmp_path, digits):
    graph = export_checkpoint(trained.paths["subnet"], tmp_path / "ptq.tfir")
    assert graph.meta["calibration"] == "post-training"
    assert any(t.encoding == "block-rle" for t in graph.tensors.values())
    logits = reference_logits(graph, digits.test.images[:4])
    assert logits.shape == (4, 10)


def test_uncalibrated_model_refuses_to_export():
    model = QuantSubnet.from_subnet(Subnet.from_config(tiny_config()).eval())
    with pytest.raises(ValueError, match="not calibrated"):
        to_graph(model)


def test_cli_train_and_export(tmp_path):
    runner = CliRunner()
    config = tiny_config().to_json(indent=None)
    result = runner.invoke(
        app,
        ["train", "-o", str(tmp_path / "run"), "--config", config, "--epochs", "1",
         "--prune-epochs", "1", "--finetune-epochs", "0", "--qat-epochs", "1", "--sparsity",
         "0.5", "--block", "2", "--no-progress", "--json"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["agreement"] == 1.0 and (tmp_path / "run" / "model.tfir").exists()
    result = runner.invoke(
        app, ["export", str(tmp_path / "run" / "qat.pt"), "-o", str(tmp_path / "x.tfir"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["digest"] == ir.digest(
        ir.load(tmp_path / "run" / "model.tfir")
    )
    result = runner.invoke(app, ["export", str(tmp_path / "nope.pt"), "-o", str(tmp_path / "y")])
    assert result.exit_code == 1 and "does not exist" in result.output


def test_cifar10_structure_is_exact_too():
    """Three MBConv stages, two transformer stages (patch 2), B = 8: integer path == reference."""
    from tinyformer.model import SupernetSpace
    from tinyformer.prune import prune

    torch.manual_seed(0)
    subnet = Subnet.from_config(SupernetSpace.for_dataset("cifar10").smallest()).eval()
    plan = SparsityPlan.uniform(subnet, 0.5, 8)
    prune(subnet, plan)
    model = QuantSubnet.from_subnet(subnet, plan)
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    model.train()
    with torch.no_grad():
        model(x)  # observe the ranges
    model.freeze()
    codes, _ = model.eval().int_logits(x)
    np.testing.assert_array_equal(codes.numpy(), reference_logits(to_graph(model), images))


def test_search_candidate_graph_matches_the_exported_model(trained):
    """The search budgets a candidate on ``config_graph`` (random weights pruned to the plan);
    the deployed model comes from export. Same ops, shapes, arena and weight storage sizes,
    or the search's flash and SRAM figures would not be the deployed model's."""
    from tinyformer.engine.codegen import plan_graph
    from tinyformer.nas.candidate import config_graph

    exported = ir.load(trained.paths["model"])
    plan = SparsityPlan.load(trained.paths["plan"])
    candidate = config_graph(tiny_config(), {n: (s.block, s.sparsity) for n, s in plan.items()})

    def layout(g):
        return [(n.op, tuple(g.tensors[n.outputs[0]].shape)) for n in g.nodes]

    assert layout(candidate) == layout(exported)
    assert plan_graph(candidate).arena_bytes == plan_graph(exported).arena_bytes

    def stored(g):
        return {
            n.name: g.tensors[n.inputs[1]].nbytes
            for n in g.nodes
            if n.op in ("conv2d", "linear", "depthwise_conv2d")
        }

    got, want = stored(candidate), stored(exported)
    assert got.keys() == want.keys()
    for name in want:  # the pruning pattern differs, so the encoded sizes differ a little
        assert abs(got[name] - want[name]) <= max(16, 0.05 * want[name]), name
