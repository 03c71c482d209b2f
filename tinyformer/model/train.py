"""Supernet training with the sandwich rule and in-place distillation, resumable.

Each step trains, on one augmented batch, the largest subnet (cross-entropy with label
smoothing), then the smallest and ``num_random`` random subnets against the largest one's
detached soft predictions (in-place distillation); gradients accumulate over all of them and
AdamW takes one step, with a per-step warmup + cosine learning rate.

The loop is :func:`tinyformer.model.fit.fit`. After every epoch the whole state (weights,
optimizer, scheduler, epoch, every random generator, history;
:mod:`tinyformer.model.checkpoint`) is written atomically, so ``resume`` continues exactly
where it stopped: on the same device, a resumed run gives the same weights as an
uninterrupted one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tinyformer.data.augment import default_augment
from tinyformer.data.datasets import DatasetSplits, ImageDataset, iterate_batches, num_batches
from tinyformer.model.checkpoint import (
    check_resume,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.model.device import Precision, configure_threads, resolve_device
from tinyformer.model.fit import (
    Hook,
    Progress,
    adamw_warmup_cosine,
    check_finite,
    fit,
    soft_cross_entropy,
)
from tinyformer.model.subnet import Subnet
from tinyformer.model.supernet import Supernet
from tinyformer.results import percent

# Fields that may change between a run and its resumption (on one device they do not change
# the math; a run resumed on another device, or with the other precision, continues inexactly).
RUNTIME_FIELDS = ("device", "amp", "num_threads", "progress", "stop_after_epochs")
CALIB_SEED = 12345  # calibration batches come from their own generator, not the training one


@dataclass
class TrainConfig:
    """Supernet training settings.

    The defaults train digits in about two minutes on two CPU cores (measured: 99.7 % test
    accuracy for the largest subnet, 94 % for the smallest).
    """

    epochs: int = 60
    batch_size: int = 64
    lr: float = 3e-3
    min_lr_ratio: float = 0.01
    warmup_epochs: float = 2.0
    weight_decay: float = 0.05
    num_random: int = 2
    distill: bool = True
    label_smoothing: float = 0.1
    grad_clip: float | None = 5.0
    augment: bool = True
    seed: int = 0
    train_subset: int | None = None
    max_steps_per_epoch: int | None = None
    calib_batches: int = 8
    device: str = "auto"
    amp: bool = True  # mixed precision on CUDA (float16 autocast + GradScaler)
    num_threads: int | None = None  # CPU threads (default: tinyformer.model.device)
    progress: bool = True
    stop_after_epochs: int | None = None  # end this call early (time-boxed jobs); resume later

    def schedule_dict(self) -> dict[str, Any]:
        """The fields a resumed run must share with the run that wrote the checkpoint."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in RUNTIME_FIELDS}


@dataclass
class TrainResult:
    supernet: Supernet
    history: list[dict[str, float]] = field(default_factory=list)
    resumed_from_epoch: int = 0


def sandwich_configs(space: SupernetSpace, rng: np.random.Generator, n: int) -> list[SubnetConfig]:
    """[largest, smallest, n random]: the subnets trained in one step."""
    return [space.largest(), space.smallest(), *(space.sample(rng) for _ in range(n))]


def sandwich_step(
    supernet: Supernet,
    x: torch.Tensor,
    y: torch.Tensor,
    configs: list[SubnetConfig],
    cfg: TrainConfig,
    precision: Precision | None = None,
) -> float:
    """Accumulate gradients of all ``configs`` (the first is the teacher); returns its loss."""
    amp = precision or Precision("cpu", enabled=False)
    with amp.autocast():
        logits = supernet(x, configs[0])
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
    check_finite(loss)
    amp.backward(loss)
    teacher = logits.detach().float().softmax(dim=-1)
    for sub_cfg in configs[1:]:
        with amp.autocast():
            out = supernet(x, sub_cfg)
            if cfg.distill:
                sub_loss = soft_cross_entropy(out, teacher)
            else:
                sub_loss = F.cross_entropy(out, y, label_smoothing=cfg.label_smoothing)
        amp.backward(sub_loss)
    return loss.item()


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: ImageDataset,
    config: SubnetConfig | None = None,
    batch_size: int = 512,
    device: torch.device | str | None = None,
) -> float:
    """Top-1 accuracy of a ``Subnet`` (or of ``Supernet`` with ``config``) on ``split``."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    images, labels = split.tensors(device)
    correct = 0
    for x, y in iterate_batches(images, labels, batch_size):
        out = model(x) if config is None else model(x, config)
        correct += int((out.argmax(dim=-1) == y).sum())
    model.train(was_training)
    return correct / max(1, len(split))


def calibration_inputs(
    split: ImageDataset, batch_size: int, count: int, device: torch.device | str
) -> Iterator[torch.Tensor]:
    """``count`` un-augmented batches in a fixed shuffled order (independent of training RNG)."""
    images, labels = split.tensors(device)
    gen = torch.Generator().manual_seed(CALIB_SEED)
    for x, _ in iterate_batches(
        images, labels, batch_size, shuffle=True, generator=gen, max_batches=count
    ):
        yield x


def evaluate_subnet(
    supernet: Supernet,
    config: SubnetConfig,
    data: DatasetSplits,
    split: str = "val",
    calib_batches: int = 8,
    batch_size: int = 64,
) -> float:
    """Recalibrate BatchNorm for ``config`` on training images, then measure accuracy."""
    device = next(supernet.parameters()).device
    supernet.calibrate_bn(config, calibration_inputs(data.train, batch_size, calib_batches, device))
    return evaluate(supernet, getattr(data, split), config, device=device)


def calibrated_subnet(
    supernet: Supernet,
    config: SubnetConfig,
    data: DatasetSplits,
    calib_batches: int = 8,
    batch_size: int = 64,
) -> Subnet:
    """A standalone subnet with BatchNorm statistics recomputed for ``config`` (eval mode)."""
    device = next(supernet.parameters()).device
    supernet.calibrate_bn(config, calibration_inputs(data.train, batch_size, calib_batches, device))
    return supernet.extract(config).eval()


# ----------------------------------------------------------------------------- training


class _SupernetEpoch(Hook):
    """The supernet's epoch end: learning rate and both ends' val accuracy in the history row,
    then (with a checkpoint path) the whole state saved."""

    def __init__(
        self,
        supernet: Supernet,
        data: DatasetSplits,
        cfg: TrainConfig,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        history: list[dict[str, Any]],
        save: Path | None,
        rngs: tuple[np.random.Generator, torch.Generator],
        precision: Precision,
    ) -> None:
        self.supernet, self.data, self.cfg, self.scheduler = supernet, data, cfg, scheduler
        self.history, self.save, self.rngs, self.precision = history, save, rngs, precision

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        row["lr"] = self.scheduler.get_last_lr()[0]
        space, cfg = self.supernet.space, self.cfg
        # Largest last, so the saved BN statistics are calibrated for the default active subnet.
        for name, sub_cfg in (("smallest", space.smallest()), ("largest", space.largest())):
            row[f"val_acc_{name}"] = evaluate_subnet(
                self.supernet, sub_cfg, self.data, "val", cfg.calib_batches, cfg.batch_size
            )

    def after_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        self.history.append(row)
        if self.save is not None:
            save_checkpoint(
                self.save, self.supernet.space, self.cfg.schedule_dict(), epoch + 1,
                self.supernet, self.scheduler.optimizer, self.scheduler, rng_state(*self.rngs),
                self.history, self.precision.state_dict(),
            )  # fmt: skip


def _epoch_line(row: dict[str, Any]) -> str:
    return (
        f"epoch {row['epoch']}: loss {row['loss']:.4f}, val acc largest "
        f"{percent(row['val_acc_largest'])}, smallest {percent(row['val_acc_smallest'])} "
        f"({row['seconds']:.1f} s)"
    )


def train_supernet(
    supernet: Supernet,
    data: DatasetSplits,
    cfg: TrainConfig | None = None,
    checkpoint: str | Path | None = None,
    resume: bool = True,
) -> TrainResult:
    """Train ``supernet`` on ``data.train`` with the sandwich rule; see the module docstring.

    With ``checkpoint``, the state is saved there after every epoch, and (with ``resume``) an
    existing checkpoint is loaded first and training continues from its next epoch.
    History rows: epoch, loss, lr, val accuracy of the largest and smallest subnets, seconds.
    """
    cfg = cfg or TrainConfig()
    device = resolve_device(cfg.device)
    if device.type == "cpu":
        configure_threads(cfg.num_threads)
    supernet.to(device)
    precision = Precision.for_device(device, cfg.amp)
    space = supernet.space
    if (data.image_size, data.in_channels, data.num_classes) != (
        space.image_size,
        space.in_channels,
        space.num_classes,
    ):
        raise ValueError(
            f"data set {data.name} ({data.image_size}x{data.image_size}x{data.in_channels}, "
            f"{data.num_classes} classes) does not match the space {space.name}"
        )

    train_split = data.train if cfg.train_subset is None else data.train.subset(cfg.train_subset)
    steps = num_batches(len(train_split), cfg.batch_size, drop_last=True)
    if cfg.max_steps_per_epoch is not None:
        steps = min(steps, cfg.max_steps_per_epoch)

    np_rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    optimizer, scheduler = adamw_warmup_cosine(
        supernet, cfg.lr, cfg.weight_decay, cfg.epochs * steps, round(cfg.warmup_epochs * steps),
        cfg.min_lr_ratio,
    )  # fmt: skip

    result = TrainResult(supernet)
    start = 0
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None and resume and ckpt.exists():
        state = load_checkpoint(ckpt)  # CPU: RNG states must stay there; weights get copied
        check_resume(state, space, cfg.schedule_dict(), ckpt)
        supernet.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"], np_rng, gen)
        precision.load_state_dict(state.get("scaler"))
        result.history = list(state["history"])
        start = result.resumed_from_epoch = int(state["epoch"])

    stop = None if cfg.stop_after_epochs is None else start + cfg.stop_after_epochs

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        configs = sandwich_configs(space, np_rng, cfg.num_random)
        return sandwich_step(supernet, x, y, configs, cfg, precision)

    hooks: list[Hook] = [Progress(_epoch_line)] if cfg.progress else []
    hooks.append(
        _SupernetEpoch(
            supernet, data, cfg, scheduler, result.history, ckpt, (np_rng, gen), precision
        )
    )
    fit(
        supernet, train_split, cfg.epochs, optimizer, scheduler, step, gen,
        batch_size=cfg.batch_size, steps=steps,
        augment=default_augment(data.name, data.image_size) if cfg.augment else None,
        grad_clip=cfg.grad_clip, hooks=hooks, start_epoch=start, stop_epoch=stop,
        progress=cfg.progress, precision=precision,
    )  # fmt: skip
    supernet.eval()
    return result
