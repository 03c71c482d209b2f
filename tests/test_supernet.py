"""Supernet: configs, weight-sharing extraction, BN calibration, training, checkpoint/resume."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from tinyformer.data import load_digits_splits
from tinyformer.model import (
    ConfigError,
    MBConvStageConfig,
    Subnet,
    SubnetConfig,
    Supernet,
    SupernetSpace,
    TrainConfig,
    TransformerStageConfig,
    evaluate,
    load_subnet,
    load_supernet,
    save_subnet,
    train_supernet,
)
from tinyformer.model.checkpoint import CheckpointError
from tinyformer.model.modules import GlobalAvgPool

SPACES = ("digits", "cifar10")


@pytest.fixture(scope="module")
def digits():
    return load_digits_splits()


def _randomise_bn(module: nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and affine parameters, so extraction must copy them right."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if hasattr(m, "running_mean"):
                n = m.running_mean.shape[0]
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)


def _input(space: SupernetSpace, n: int = 3, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, space.in_channels, space.image_size, space.image_size, generator=gen)


# ----------------------------------------------------------------------------- configs


@pytest.mark.parametrize("name", SPACES)
def test_config_json_round_trip(name: str, tmp_path: Path) -> None:
    space = SupernetSpace.for_dataset(name)
    rng = np.random.default_rng(0)
    configs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(20)]
    assert len(set(configs)) > 15  # sampling explores the space; configs are hashable
    for cfg in configs:
        again = SubnetConfig.from_json(cfg.to_json())
        assert again == cfg and hash(again) == hash(cfg)
        space.validate(again)
    configs[3].save(tmp_path / "cfg.json")
    assert SubnetConfig.load(tmp_path / "cfg.json") == configs[3]
    assert SupernetSpace.from_json(space.to_json()) == space


def _digits_dict() -> dict:
    return SupernetSpace.for_dataset("digits").largest().to_dict()


def _edit(path: str, value) -> dict:
    data = _digits_dict()
    target = data
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    if value is KeyError:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_edit("stages.0.kind", "lstm"), r"stages\[0\]\.kind: must be one of"),
        (_edit("stages.1.depth", 0), r"stages\[1\]\.depth: must be an int >= 1, got 0"),
        (_edit("stages.1.heads", True), r"stages\[1\]\.heads: must be an int"),
        (_edit("stages.0.kernel_size", 4), r"stages\[0\]\.kernel_size: must be odd"),
        (_edit("stages.0.stride", 3), r"stages\[0\]\.stride: must be 1 or 2"),
        (_edit("stages.1.foo", 1), r"stages\[1\]: unknown keys \['foo'\]"),
        (_edit("stages.1.heads", KeyError), r"stages\[1\]: missing keys \['heads'\]"),
        (_edit("num_classes", 1), "num_classes: must be an int >= 2"),
        (_edit("stem_width", KeyError), r"missing keys \['stem_width'\]"),
        (_edit("stages", []), "need at least one stage"),
        (_edit("stages", "mbconv"), "stages: expected a list"),
        (_edit("version", 99), "version: 99 is not supported"),
        (_edit("image_size", 10) | {"stages": [_digits_dict()["stages"][0],
         _digits_dict()["stages"][1] | {"patch_size": 2}]},
         r"stages\[1\]\.patch_size: 2 does not divide the 5x5"),
    ],
)  # fmt: skip
def test_config_validation_errors(data: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SubnetConfig.from_dict(data)


def test_config_bad_json() -> None:
    with pytest.raises(ConfigError, match="not valid JSON"):
        SubnetConfig.from_json("{stages: ")
    with pytest.raises(ConfigError, match="expected an object"):
        SubnetConfig.from_json("[1, 2]")


def test_space_validation_errors() -> None:
    space = SupernetSpace.for_dataset("digits")
    base = space.largest()
    mb, tr = base.stages

    def bad(**changes) -> SubnetConfig:
        return SubnetConfig(**{**base.__dict__, **changes})

    cases = [
        (bad(stages=(MBConvStageConfig(1, 20, 3, 2, 2), tr)),
         r"stages\[0\]\.width: 20 is not one of the choices \[16, 24, 32\]"),
        (bad(stages=(mb, TransformerStageConfig(1, 32, 3, 1))), r"stages\[1\]\.heads: 3"),
        (bad(stages=(mb,)), "the space has 2 stages, config has 1"),
        (bad(stages=(tr, tr)), r"stages\[0\]\.kind: the space has an mbconv stage"),
        (bad(image_size=16), "image_size: 16 does not match the space's 8"),
        (bad(stem_width=12), r"stem_width: 12 is not one of the choices \[8, 16\]"),
        (bad(stages=(MBConvStageConfig(1, 16, 3, 2, 1), tr)), "stride: the space fixes it to 2"),
    ]  # fmt: skip
    for cfg, message in cases:
        with pytest.raises(ConfigError, match=message):
            space.validate(cfg)
        assert not space.contains(cfg)
    with pytest.raises(ConfigError, match="heads"):
        Supernet(space).set_active(cases[1][0])


def test_default_spaces_fit_an_mcu() -> None:
    digits = SupernetSpace.for_dataset("digits")
    cifar = SupernetSpace.for_dataset("cifar10")
    assert (digits.image_size, digits.in_channels) == (8, 1)
    assert (cifar.image_size, cifar.in_channels) == (32, 3)
    d, c = Supernet(digits), Supernet(cifar)
    assert d.extract(digits.largest()).num_parameters() < 100_000
    assert d.extract(digits.smallest()).num_parameters() < 10_000
    assert 300_000 < c.extract(cifar.largest()).num_parameters() <= 1_000_000
    assert c.extract(cifar.smallest()).num_parameters() < 300_000
    kinds = [s.kind for s in cifar.stages]
    assert "mbconv" in kinds and "transformer" in kinds
    for size in (16, 28):  # 28: the 7x7 map cannot take 2x2 patches, so they become 1x1
        custom = SupernetSpace.for_dataset("shapes", image_size=size, in_channels=3, num_classes=4)
        assert Supernet(custom)(_input(custom)).shape == (3, 4)


# ----------------------------------------------------------------------------- weight sharing

ALLOWED_LEAVES = (
    nn.Conv2d, nn.BatchNorm2d, nn.ReLU6, nn.Identity, nn.Linear, nn.LayerNorm, nn.GELU,
    GlobalAvgPool,
)  # fmt: skip


@pytest.mark.parametrize(("name", "count"), [("digits", 12), ("cifar10", 3)])
def test_extracted_subnet_matches_supernet(name: str, count: int) -> None:
    torch.manual_seed(0)
    space = SupernetSpace.for_dataset(name)
    net = Supernet(space)
    _randomise_bn(net, 1)
    net.eval()
    x = _input(space)
    rng = np.random.default_rng(1)
    configs = [space.largest(), space.smallest()] + [space.sample(rng) for _ in range(count)]
    with torch.no_grad():
        for cfg in configs:
            sub = net.extract(cfg).eval()
            expected = net(x, cfg)
            assert expected.shape == (3, space.num_classes)
            torch.testing.assert_close(sub(x), expected, rtol=1e-5, atol=1e-5)
            assert sub.config == cfg
            for module in sub.modules():
                if not list(module.children()):
                    assert isinstance(module, ALLOWED_LEAVES), type(module)
    # Different configs really compute different functions (the test above is not vacuous).
    assert not torch.allclose(net(x, configs[0]), net(x, configs[1]))


def test_extraction_copies_the_shared_slices() -> None:
    space = SupernetSpace.for_dataset("digits")
    net = Supernet(space)
    small = net.extract(space.smallest())
    stem_w = space.smallest().stem_width
    assert torch.equal(small.stem.conv.weight, net.stem.conv.weight[:stem_w])
    dw_full = net.stages[0].blocks[0].depthwise.conv.weight  # largest kernel 5
    dw = small.stages[0].blocks[0].depthwise.conv
    assert dw.kernel_size == (3, 3) and dw.groups == dw.in_channels
    assert torch.equal(dw.weight, dw_full[: dw.in_channels, :, 1:4, 1:4])
    q = small.stages[1].blocks[0].attn.q
    assert torch.equal(q.weight, net.stages[1].blocks[0].attn.q.weight[: q.out_features, :32])
    # Copies, not views: training the subnet leaves the supernet alone.
    with torch.no_grad():
        small.stem.conv.weight.add_(1.0)
    assert not torch.equal(small.stem.conv.weight, net.stem.conv.weight[:stem_w])


def test_subnet_from_config_and_file_round_trip(tmp_path: Path) -> None:
    space = SupernetSpace.for_dataset("digits")
    cfg = space.sample(np.random.default_rng(5))
    net = Supernet(space)
    _randomise_bn(net, 2)
    sub = net.extract(cfg).eval()
    fresh = Subnet.from_config(cfg)
    assert {k: v.shape for k, v in fresh.state_dict().items()} == {
        k: v.shape for k, v in sub.state_dict().items()
    }
    save_subnet(sub, tmp_path / "sub.pt")
    loaded = load_subnet(tmp_path / "sub.pt")
    x = _input(space)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), sub(x), rtol=0, atol=0)
    assert loaded.config == cfg


def test_calibrate_bn_gives_exact_batch_statistics() -> None:
    torch.manual_seed(0)
    space = SupernetSpace.for_dataset("digits")
    net = Supernet(space)
    cfg = space.smallest()
    x = _input(space, n=16)
    net.calibrate_bn(cfg, [x[:8], x[8:]])
    assert not net.training
    with torch.no_grad():
        feat = net.stem.conv(x, cfg.stem_width, space.stem_kernel)
    bn = net.stem.bn
    torch.testing.assert_close(bn.running_mean[: cfg.stem_width], feat.mean(dim=(0, 2, 3)))
    assert bn.momentum == 0.1  # restored


# ----------------------------------------------------------------------------- training


def _tiny(**kw) -> TrainConfig:
    base = dict(
        epochs=2, batch_size=32, train_subset=96, max_steps_per_epoch=2, num_random=1,
        calib_batches=2, progress=False, num_threads=1, seed=3,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_train_checkpoint_and_resume_continue_exactly(digits, tmp_path: Path) -> None:
    space = SupernetSpace.for_dataset("digits")
    torch.manual_seed(0)
    straight = train_supernet(Supernet(space), digits, _tiny(), tmp_path / "a.pt")
    assert [r["epoch"] for r in straight.history] == [1, 2]
    assert all(np.isfinite(r["loss"]) for r in straight.history)

    torch.manual_seed(0)
    first = train_supernet(Supernet(space), digits, _tiny(stop_after_epochs=1), tmp_path / "b.pt")
    assert len(first.history) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]  # no temp files left
    torch.manual_seed(99)  # a different init: everything must come from the checkpoint
    resumed = train_supernet(Supernet(space), digits, _tiny(), tmp_path / "b.pt")
    assert resumed.resumed_from_epoch == 1 and len(resumed.history) == 2

    a, b = straight.supernet.state_dict(), resumed.supernet.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    for ra, rb in zip(straight.history, resumed.history, strict=True):
        assert {k: v for k, v in ra.items() if k != "seconds"} == {
            k: v for k, v in rb.items() if k != "seconds"
        }

    loaded = load_supernet(tmp_path / "b.pt")
    x = _input(space)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), resumed.supernet.cpu().eval()(x), rtol=0, atol=0)
    # The saved BN statistics are those the largest subnet was last evaluated with.
    acc = evaluate(loaded, digits.val, space.largest())
    assert acc == resumed.history[-1]["val_acc_largest"]

    # Training actually changed the weights and a finished run has nothing left to do.
    again = train_supernet(Supernet(space), digits, _tiny(), tmp_path / "b.pt")
    assert again.resumed_from_epoch == 2 and len(again.history) == 2


def test_resume_refuses_other_settings(digits, tmp_path: Path) -> None:
    space = SupernetSpace.for_dataset("digits")
    ckpt = tmp_path / "c.pt"
    train_supernet(Supernet(space), digits, _tiny(epochs=1), ckpt)
    with pytest.raises(CheckpointError, match=r"lr: 0.003 -> 0.001"):
        train_supernet(Supernet(space), digits, _tiny(epochs=1, lr=1e-3), ckpt)
    other = SupernetSpace.from_subnet(space.smallest())
    with pytest.raises(CheckpointError, match="different search space"):
        train_supernet(Supernet(other), digits, _tiny(epochs=1), ckpt)
    fresh = train_supernet(Supernet(space), digits, _tiny(epochs=1, lr=1e-3), ckpt, resume=False)
    assert fresh.resumed_from_epoch == 0
    ckpt.write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_supernet(ckpt)


def test_train_rejects_mismatched_data(digits) -> None:
    cifar = Supernet(SupernetSpace.for_dataset("cifar10"))
    with pytest.raises(ValueError, match="does not match the space"):
        train_supernet(cifar, digits, _tiny())


def test_json_is_plain(tmp_path: Path) -> None:
    cfg = SupernetSpace.for_dataset("cifar10").largest()
    data = json.loads(cfg.to_json())
    assert data["stages"][3] == {
        "kind": "transformer", "depth": 3, "width": 128, "heads": 4, "mlp_ratio": 2,
        "head_dim": 32, "patch_size": 1,
    }  # fmt: skip
