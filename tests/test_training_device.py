"""Where training runs: device selection, the thread default on a shared machine, mixed
precision's wiring (checked on the CPU with bfloat16, as no GPU is here), progress bars only
on a terminal, and the CLI's refusals of an unusable --device or --threads."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_fit import tiny_split  # tests/ is on sys.path (conftest.py)
from torch import nn
from typer.testing import CliRunner

from tinyformer.cli import app
from tinyformer.data.datasets import to_model_input
from tinyformer.model.device import Precision, configure_threads, default_threads, resolve_device
from tinyformer.model.fit import fit, supervised_step

CUDA = torch.cuda.is_available()


def test_device_auto_is_cuda_only_when_present() -> None:
    assert resolve_device("auto").type == ("cuda" if CUDA else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="give auto, cpu, cuda or cuda:N"):
        resolve_device("tpu")
    if not CUDA:
        with pytest.raises(ValueError, match="CUDA is not available here"):
            resolve_device("cuda")
    with pytest.raises(ValueError, match="CUDA"):
        resolve_device(f"cuda:{torch.cuda.device_count() + 3}")


def test_cli_refuses_an_unusable_device_in_one_line(tmp_path: Path) -> None:
    if CUDA:
        pytest.skip("a CUDA device is present")
    result = CliRunner().invoke(app, ["train", "-o", str(tmp_path), "--device", "cuda"])
    assert result.exit_code == 1 and result.output.startswith("error: --device cuda: CUDA")
    assert result.output.count("\n") == 1
    assert not (tmp_path / "train_state.pt").exists()
    result = CliRunner().invoke(app, ["train", "-o", str(tmp_path), "--threads", "0"])
    assert result.exit_code == 2 and "--threads" in result.output  # typer's usage error


def _cgroup(root: Path, v2: str | None = None, v1: tuple[int, int] | None = None) -> Path:
    if v2 is not None:
        (root / "cpu.max").write_text(v2 + "\n")
    if v1 is not None:
        (root / "cpu").mkdir()
        (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{v1[0]}\n")
        (root / "cpu" / "cpu.cfs_period_us").write_text(f"{v1[1]}\n")
    return root


def test_default_threads_follow_the_machine_share_not_the_host(tmp_path: Path) -> None:
    cores = len(os.sched_getaffinity(0))
    none = tmp_path / "none"
    none.mkdir()
    assert default_threads({}, none) == cores  # affinity, not os.cpu_count()
    assert default_threads({"OMP_NUM_THREADS": "3"}, none) == 3
    assert default_threads({"OMP_NUM_THREADS": "lots"}, none) == cores
    for name, kw, quota in (
        ("v2", {"v2": "50000 100000"}, 1),  # half a CPU: one thread
        ("v2max", {"v2": "max 100000"}, None),
        ("v1", {"v1": (100000, 100000)}, 1),
        ("v1none", {"v1": (-1, 100000)}, None),
    ):
        root = tmp_path / name
        root.mkdir()
        expected = cores if quota is None else min(cores, quota)
        assert default_threads({}, _cgroup(root, **kw)) == expected, name


def test_configure_threads_sets_torch() -> None:
    before = torch.get_num_threads()
    try:
        assert configure_threads(1) == 1 == torch.get_num_threads()
        with pytest.raises(ValueError, match="at least 1"):
            configure_threads(0)
    finally:
        torch.set_num_threads(before)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))


def _fit_once(model: nn.Module, precision: Precision | None, clip: float) -> None:
    """One SGD step on the whole (unshuffled-equivalent) batch through fit."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    step = supervised_step(model, 0.0, None, precision)
    gen = torch.Generator().manual_seed(0)
    fit(model, tiny_split(32), 1, optimizer, scheduler, step, gen, batch_size=32, grad_clip=clip,
        precision=precision)  # fmt: skip


def test_disabled_precision_is_the_plain_step() -> None:
    """On the CPU ``for_device`` turns mixed precision off: fit is the float32 loop, exactly."""
    off = Precision.for_device(torch.device("cpu"))
    assert not off.enabled and off.state_dict() == {}
    a, b = _model(), _model()
    _fit_once(a, off, 0.1)
    _fit_once(b, None, 0.1)
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)


def test_mixed_precision_scales_the_loss_and_clips_true_gradients() -> None:
    """The CUDA path's scaler wiring, run on the CPU with bfloat16: the loss is scaled for
    backward and unscaled before clipping, so the step is the autocast step without scaling."""
    amp = Precision("cpu", enabled=True, dtype=torch.bfloat16)
    model = _model()
    _fit_once(model, amp, 0.1)
    assert amp.state_dict()["scale"] == 2.0**16  # no overflow: the scale stands

    manual = _model()  # the same step by hand: autocast, plain backward, clip, SGD
    x = to_model_input(torch.from_numpy(tiny_split(32).images).permute(0, 3, 1, 2))
    y = torch.from_numpy(tiny_split(32).labels)
    order = torch.randperm(32, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = F.cross_entropy(manual(x[order]), y[order])
    loss.backward()
    nn.utils.clip_grad_norm_(manual.parameters(), 0.1)
    torch.optim.SGD(manual.parameters(), lr=0.5).step()
    for pa, pb in zip(model.parameters(), manual.parameters(), strict=True):
        torch.testing.assert_close(pa, pb, rtol=1e-3, atol=1e-5)
    pairs = zip(model.parameters(), _model().parameters(), strict=True)
    moved = sum(float((p - q).detach().abs().sum()) for p, q in pairs)
    assert moved > 0.05  # the step happened at the unscaled size, not 2**16 times smaller


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_bars_on_a_terminal_only(tty: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    err = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    model = _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    step = supervised_step(model, 0.0)
    fit(model, tiny_split(32), 1, optimizer, scheduler, step, torch.Generator().manual_seed(0),
        batch_size=8, desc="float", progress=True)  # fmt: skip
    assert ("float 1/1" in err.getvalue()) == tty
