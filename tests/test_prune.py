"""Blockwise pruning: block masks in the engine's layout, exact sparsity, masks that survive
training, QAT and export, the cubic schedule and sparsity plans."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
import torch
from torch import nn

from tinyformer.engine import sparse_format
from tinyformer.model import MBConvStageConfig, Subnet, SubnetConfig, TransformerStageConfig
from tinyformer.model.subnet import load_subnet, save_subnet
from tinyformer.prune import (
    GradualPruner,
    GradualSchedule,
    LayerSparsity,
    PlanError,
    SparsityPlan,
    attach,
    block_mask,
    block_sparsity,
    cubic_fraction,
    cubic_sparsity,
    engine_rows,
    from_engine_rows,
    get_mask,
    masks_from_zeros,
    prunable_modules,
    prune,
    set_mask,
)


def tiny_config() -> SubnetConfig:
    return SubnetConfig(
        image_size=8,
        in_channels=1,
        num_classes=10,
        stem_width=8,
        stages=(
            MBConvStageConfig(depth=1, width=8, kernel_size=3, expand_ratio=2, stride=2),
            TransformerStageConfig(depth=1, width=16, heads=2, mlp_ratio=1, head_dim=8),
        ),
    )


def _blocks_constant(mask_rows: torch.Tensor, block: int) -> bool:
    """Every B-block of every row is all kept or all pruned."""
    k = mask_rows.shape[1]
    for start in range(0, k, block):
        chunk = mask_rows[:, start : start + block]
        if not torch.all(chunk == chunk[:, :1]):
            return False
    return True


@pytest.mark.parametrize("block", [1, 2, 4, 8, 16])
def test_linear_blocks_run_along_the_input_dimension(block):
    torch.manual_seed(0)
    w = torch.randn(12, 40)  # 40 is not a multiple of 16: the last block is short
    mask = block_mask(w, block, 0.5)
    assert mask.shape == w.shape
    assert _blocks_constant(mask, block)
    nb = -(-40 // block)
    assert int((mask.reshape(12, -1)[:, ::block] == 0).sum()) == round(0.5 * 12 * nb)


def test_conv_blocks_follow_the_engine_ohwi_rows():
    torch.manual_seed(1)
    w = torch.randn(6, 8, 3, 3)  # torch OIHW; the engine row is [kh][kw][Cin]
    mask = block_mask(w, 4, 0.5)
    rows = engine_rows(mask)
    assert rows.shape == (6, 72)
    assert _blocks_constant(rows, 4)
    # a block is 4 consecutive input channels of one kernel tap
    ohwi = mask.permute(0, 2, 3, 1)
    assert torch.all(ohwi[..., 0:4] == ohwi[..., 0:1])
    assert torch.all(ohwi[..., 4:8] == ohwi[..., 4:5])
    assert torch.equal(from_engine_rows(engine_rows(w), w.shape), w)


def test_block_mask_matches_the_engine_pruner():
    """Same criterion as sparse_format.prune_blocks (block L2, whole matrix, stable ties)."""
    rng = np.random.default_rng(3)
    w_int = rng.integers(-127, 128, (8, 3, 3, 10)).astype(np.int8)  # OHWI
    expected = sparse_format.prune_blocks(w_int, 4, 0.6) != 0
    w = torch.from_numpy(w_int.astype(np.float32)).permute(0, 3, 1, 2)  # -> OIHW
    got = (w * block_mask(w, 4, 0.6)).permute(0, 2, 3, 1).numpy() != 0
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 0.75, 0.9, 1.0])
def test_exact_block_sparsity(sparsity):
    torch.manual_seed(2)
    w = torch.randn(10, 30)
    pruned = w * block_mask(w, 4, sparsity)
    mask = sparse_format.block_mask(
        np.where(pruned.numpy() != 0, 1, 0).astype(np.int8), 4
    )  # engine's own view of which blocks are non-zero
    assert (~mask).sum() == round(sparsity * mask.size)
    assert block_sparsity(pruned, 4) == pytest.approx(round(sparsity * mask.size) / mask.size)


def test_prunable_layers_skip_depthwise_and_norms():
    model = Subnet.from_config(tiny_config())
    names = set(prunable_modules(model))
    assert "stem.conv" in names and "classifier" in names
    assert "stages.0.blocks.0.expand.conv" in names and "stages.1.blocks.0.attn.q" in names
    assert "stages.1.embed" in names
    assert not any("depthwise" in n or "norm" in n or n.endswith("bn") for n in names)
    plan = SparsityPlan.uniform(model, 0.5, 4)
    assert "stem.conv" not in plan and "classifier" not in plan
    assert "stages.1.blocks.0.mlp.fc2" in plan


def test_masks_survive_optimizer_steps():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    x, y = torch.randn(64, 32), torch.randint(0, 4, (64,))
    for _ in range(3):  # momentum built up before pruning
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    plan = SparsityPlan({"0": LayerSparsity(4, 0.5), "2": LayerSparsity(2, 0.75)})
    prune(model, plan)
    attach(model, opt)
    masks = {n: get_mask(m).clone() for n, m in prunable_modules(model).items()}
    for _ in range(5):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        assert torch.all(model[0].weight.grad[masks["0"] == 0] == 0)  # gradient hook
        opt.step()
        for name, m in prunable_modules(model).items():
            assert torch.all(m.weight[masks[name] == 0] == 0)
    assert block_sparsity(model[0].weight, 4) == 0.5
    assert block_sparsity(model[2].weight, 2) == 0.75


def test_cubic_schedule():
    assert cubic_fraction(0, 0, 100) == 0.0
    assert cubic_fraction(100, 0, 100) == 1.0
    assert cubic_fraction(150, 0, 100) == 1.0
    assert cubic_fraction(50, 0, 100) == pytest.approx(0.875)
    assert cubic_sparsity(50, 0, 100, 0.8) == pytest.approx(0.7)
    values = [cubic_sparsity(t, 10, 60, 0.9) for t in range(0, 80)]
    assert values[:11] == [0.0] * 11 and values[-1] == 0.9
    assert all(b >= a for a, b in itertools.pairwise(values))
    sched = GradualSchedule(0, 10, every=4)
    assert [t for t in range(12) if sched.due(t)] == [0, 4, 8, 10]


def test_gradual_pruner_grows_sparsity_monotonically():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32))
    plan = SparsityPlan({"0": LayerSparsity(4, 0.8)})
    pruner = GradualPruner(model, plan, GradualSchedule(0, 20, every=5))
    previous = torch.ones(32, 64, dtype=torch.bool)
    seen = []
    for step in range(25):
        pruner.step(step)
        with torch.no_grad():  # training moves the surviving weights
            model[0].weight.add_(0.01 * torch.randn(32, 64) * (model[0].weight != 0))
        kept = model[0].weight != 0
        assert not torch.any(kept & ~previous)  # once pruned, stays pruned
        previous = kept
        seen.append(block_sparsity(model[0].weight, 4))
    assert seen[-1] == round(0.8 * 512) / 512
    assert seen[0] == 0.0 and 0.0 < seen[6] < seen[11] < 0.8


def test_plan_json_round_trip(tmp_path):
    plan = SparsityPlan({"a.b": LayerSparsity(4, 0.5), "classifier": LayerSparsity(16, 0.25)})
    again = SparsityPlan.from_json(plan.to_json())
    assert again == plan
    assert SparsityPlan.load(plan.save(tmp_path / "plan.json")) == plan
    assert json.loads(plan.to_json())["layers"]["a.b"] == {"block": 4, "sparsity": 0.5}
    bare = SparsityPlan.from_dict({"a.b": [4, 0.5], "classifier": [16, 0.25]})
    assert bare == plan and bare.as_mapping() == {"a.b": (4, 0.5), "classifier": (16, 0.25)}
    with pytest.raises(PlanError, match="block size"):
        SparsityPlan.from_dict({"x": [3, 0.5]})
    with pytest.raises(PlanError, match="sparsity"):
        SparsityPlan.from_dict({"layers": {"x": {"block": 4, "sparsity": 1.5}}})
    with pytest.raises(PlanError, match="not valid JSON"):
        SparsityPlan.from_json("{")
    with pytest.raises(PlanError, match="does not have"):
        SparsityPlan({"nope": LayerSparsity(4, 0.5)}).check(Subnet.from_config(tiny_config()))


def test_pruned_subnet_saves_as_a_plain_subnet(tmp_path):
    torch.manual_seed(0)
    model = Subnet.from_config(tiny_config())
    plan = SparsityPlan.uniform(model, 0.5, 4)
    prune(model, plan)
    save_subnet(model, tmp_path / "subnet.pt")
    loaded = load_subnet(tmp_path / "subnet.pt")  # masks are not persistent buffers
    masks_from_zeros(loaded, plan)
    for name, module in prunable_modules(loaded).items():
        if name in plan:
            assert torch.equal(get_mask(module), get_mask(prunable_modules(model)[name]))


def test_set_mask_checks_the_shape():
    with pytest.raises(ValueError, match="mask shape"):
        set_mask(nn.Linear(4, 4), torch.ones(4, 5))
