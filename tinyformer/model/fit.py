"""The one training loop: supernet training, float subnet training, the pruning fine-tune and
QAT all run :func:`fit`; what differs between them comes in as the step function and hooks.

A step is: ``before_step`` hooks, ``zero_grad``, the step function (forward and backward,
returns the loss), gradient clipping, ``optimizer.step()``, ``after_step`` hooks,
``scheduler.step()``. After an epoch's steps, ``end_epoch`` hooks finish the epoch (freeze
observers, add metrics to the history row); then the row gets its seconds and
``after_epoch`` hooks see it whole (progress lines, checkpoints).

The batches of an epoch draw their shuffle and augmentation from one generator only, so a
run is reproducible from the seed (and, with a checkpointed generator, resumable exactly).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from tinyformer.data.datasets import ImageDataset, Transform, iterate_batches, num_batches
from tinyformer.model.device import Precision

# forward and backward of one batch (x, y); returns the loss to report
StepFn = Callable[[torch.Tensor, torch.Tensor], float]


class Hook:
    """Callbacks of :func:`fit`, each a no-op here: a phase overrides the ones it needs."""

    def before_step(self, step: int) -> None:
        """Before the step's ``zero_grad``; ``step`` counts from 0 at fit's first epoch."""

    def after_step(self, step: int) -> None:
        """Right after ``optimizer.step()``."""

    def end_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        """After the epoch's last step: change the model, add metrics to ``row``."""

    def after_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        """The epoch's row is complete (seconds included): report, checkpoint."""


class Progress(Hook):
    """One line per epoch, formatted by ``line(row)`` (the per-step bar is fit's own)."""

    def __init__(self, line: Callable[[dict[str, Any]], str]) -> None:
        self.line = line

    def after_epoch(self, epoch: int, row: dict[str, Any]) -> None:
        tqdm.write(self.line(row))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weight decay on conv / linear weights only (not on biases or norm parameters)."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """lr factor: linear warmup to 1, then cosine down to ``min_ratio`` at ``total_steps``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def adamw_warmup_cosine(
    model: nn.Module,
    lr: float,
    weight_decay: float,
    total_steps: int,
    warmup_steps: int,
    min_ratio: float,
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """The optimizer and per-step learning-rate schedule every phase trains with."""
    optimizer = torch.optim.AdamW(param_groups(model, weight_decay), lr=lr)
    schedule = warmup_cosine(total_steps, warmup_steps, min_ratio)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)


def soft_cross_entropy(logits: torch.Tensor, target_probs: torch.Tensor) -> torch.Tensor:
    return -(target_probs * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def supervised_step(
    model: nn.Module,
    label_smoothing: float,
    teacher: nn.Module | None = None,
    precision: Precision | None = None,
) -> StepFn:
    """Label cross-entropy; with a ``teacher`` (eval mode) the mean of it and the
    cross-entropy to the teacher's soft predictions (distillation). ``precision``: autocast
    and the scaled backward (give fit the same one)."""
    amp = precision or Precision("cpu", enabled=False)

    def step(x: torch.Tensor, y: torch.Tensor) -> float:
        with amp.autocast():
            logits = model(x)
            loss = F.cross_entropy(logits, y, label_smoothing=label_smoothing)
            if teacher is not None:
                with torch.no_grad():
                    target = teacher(x).softmax(dim=-1)
                loss = 0.5 * loss + 0.5 * soft_cross_entropy(logits, target)
        check_finite(loss)
        amp.backward(loss)
        return loss.item()

    return step


def check_finite(loss: torch.Tensor) -> None:
    """Stop before a non-finite loss reaches the weights."""
    if not torch.isfinite(loss):
        raise FloatingPointError(f"training loss is {loss.item()}; lower the learning rate")


def fit(
    model: nn.Module,
    train: ImageDataset,
    epochs: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    step_fn: StepFn,
    generator: torch.Generator,
    *,
    batch_size: int,
    steps: int | None = None,
    augment: Transform | None = None,
    grad_clip: float | None = None,
    hooks: Sequence[Hook] = (),
    start_epoch: int = 0,
    stop_epoch: int | None = None,
    desc: str = "epoch",
    progress: bool = False,
    precision: Precision | None = None,
) -> list[dict[str, Any]]:
    """Epochs ``start_epoch`` (a resumed run's) up to ``epochs`` (or ``stop_epoch``: a
    time-boxed call) of ``steps`` batches of ``train`` (default: all full batches); returns
    their history rows (epoch, loss, the hooks' metrics, seconds). ``progress`` shows a
    per-step bar labelled ``desc`` on a terminal (none when output goes to a file or pipe).
    ``precision``: the step function's (mixed precision: its scaler steps the optimizer)."""
    amp = precision or Precision("cpu", enabled=False)
    device = next(model.parameters()).device
    images, labels = train.tensors(device)
    full = num_batches(len(train), batch_size, drop_last=True)
    steps = full if steps is None else min(full, steps)
    history = []
    step = start_epoch * steps
    for epoch in range(start_epoch, epochs if stop_epoch is None else min(epochs, stop_epoch)):
        t0 = time.perf_counter()
        model.train()
        batches = iterate_batches(
            images, labels, batch_size, shuffle=True, generator=generator, transform=augment,
            drop_last=True, max_batches=steps,
        )  # fmt: skip
        bar = tqdm(batches, total=steps, desc=f"{desc} {epoch + 1}/{epochs}",
                   disable=None if progress else True, leave=False)  # fmt: skip
        total = 0.0
        for x, y in bar:
            for hook in hooks:
                hook.before_step(step)
            optimizer.zero_grad(set_to_none=True)
            loss = step_fn(x, y)
            amp.step(optimizer, model, grad_clip)
            for hook in hooks:
                hook.after_step(step)
            scheduler.step()
            total += loss
            step += 1
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
        row: dict[str, Any] = {"epoch": epoch + 1, "loss": total / max(1, steps)}
        for hook in hooks:
            hook.end_epoch(epoch, row)
        row["seconds"] = time.perf_counter() - t0
        for hook in hooks:
            hook.after_epoch(epoch, row)
        history.append(row)
    return history
