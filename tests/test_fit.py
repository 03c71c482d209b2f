"""The one training loop: hooks in their order, resumed and time-boxed epochs, and a
non-finite loss stopping the run before it reaches the weights."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tinyformer.data.datasets import ImageDataset
from tinyformer.model.fit import Hook, adamw_warmup_cosine, fit, supervised_step


def tiny_split(n: int = 20) -> ImageDataset:
    """n random 4x4x1 images of 3 classes (seeded): a split small enough for a fit in a test."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 4, 4, 1), dtype=np.uint8)
    return ImageDataset(images, rng.integers(0, 3, n), ("a", "b", "c"), "train")


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(16, 3))


class Record(Hook):
    def __init__(self, log: list[Any]) -> None:
        self.log = log

    def before_step(self, step: int) -> None:
        self.log.append(("before", step))

    def after_step(self, step: int) -> None:
        self.log.append(("after", step))

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        self.log.append(("end", epoch, "seconds" in row))
        row["metric"] = epoch

    def after_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        self.log.append(("done", epoch, row["metric"], "seconds" in row))


def _fit(model: nn.Module, log: list[Any], **kwargs: Any) -> list[dict[str, Any]]:
    optimizer, scheduler = adamw_warmup_cosine(model, 1e-2, 0.0, 6, 1, 0.1)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        return loss.item()

    gen = torch.Generator().manual_seed(0)
    return fit(model, tiny_split(), 3, optimizer, scheduler, step, gen, batch_size=8,
               hooks=[Record(log)], **kwargs)  # fmt: skip


def test_hooks_run_in_order_around_every_step_and_epoch() -> None:
    log: list[Any] = []
    rows = _fit(_model(), log)
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert all(r["metric"] == r["epoch"] - 1 and r["seconds"] >= 0 for r in rows)
    # 20 images, batches of 8 (drop_last): 2 steps an epoch, counted across epochs
    assert log[:6] == [("before", 0), ("after", 0), ("before", 1), ("after", 1),
                       ("end", 0, False), ("done", 0, 0, True)]  # fmt: skip
    assert ("before", 5) in log and ("before", 6) not in log


def test_start_and_stop_epoch_bound_the_run() -> None:
    log: list[Any] = []
    rows = _fit(_model(), log, start_epoch=1, stop_epoch=2)
    assert [r["epoch"] for r in rows] == [2]
    assert log[0] == ("before", 2)  # the step count continues from the resumed epoch


def test_non_finite_loss_stops_before_the_update() -> None:
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer, scheduler = adamw_warmup_cosine(model, 1e-2, 0.0, 6, 1, 0.1)
    nan = nn.Sequential(model, nn.Threshold(1e9, float("nan")))
    with pytest.raises(FloatingPointError, match="training loss is nan"):
        fit(model, tiny_split(), 1, optimizer, scheduler, supervised_step(nan, 0.0),
            torch.Generator().manual_seed(0), batch_size=8)  # fmt: skip
    for a, b in zip(before, model.parameters(), strict=True):
        assert torch.equal(a, b)
