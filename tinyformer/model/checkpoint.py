"""The supernet training checkpoint: weights, optimizer, scheduler, epoch, every random
generator and the history in one torch file, so a resumed run continues exactly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

import tinyformer.model.torch_file as torch_file
from tinyformer.model.config import SupernetSpace
from tinyformer.model.supernet import Supernet

CHECKPOINT_FORMAT = "tinyformer-supernet-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(Exception):
    """A checkpoint is unreadable or does not belong to this run."""


def rng_state(np_rng: np.random.Generator, gen: torch.Generator) -> dict[str, Any]:
    return {
        "numpy": np_rng.bit_generator.state,
        "generator": gen.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any], np_rng: np.random.Generator, gen: torch.Generator) -> None:
    np_rng.bit_generator.state = state["numpy"]
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    path: str | Path,
    space: SupernetSpace,
    schedule: dict[str, Any],
    epoch: int,
    supernet: Supernet,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    rng: dict[str, Any],
    history: list[dict[str, Any]],
    scaler: dict[str, Any] | None = None,
) -> None:
    """Write the state after ``epoch`` epochs atomically: a crash leaves the previous
    checkpoint whole. ``schedule``: the settings a resumed run must share; ``scaler``: the
    mixed-precision gradient scaler's state (empty on the CPU)."""
    torch_file.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "space": space.to_dict(),
            "train_config": schedule,
            "epoch": epoch,
            "model": supernet.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": rng,
            "history": history,
            "scaler": scaler or {},
        },
        path,
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    try:
        state = torch_file.load(path, map_location)
    except torch_file.TorchFileError as exc:
        raise CheckpointError(f"cannot read checkpoint: {exc}") from None
    return torch_file.check_format(
        state, path, CHECKPOINT_FORMAT, CHECKPOINT_VERSION, "supernet checkpoint", CheckpointError
    )


def check_resume(
    state: dict[str, Any], space: SupernetSpace, schedule: dict[str, Any], path: Path
) -> None:
    """Refuse a checkpoint of another space or other settings (the run would not be exact)."""
    if state["space"] != space.to_dict():
        raise CheckpointError(f"{path}: checkpoint is for a different search space")
    check_settings(state["train_config"], schedule, path, "use a new checkpoint path")


def check_settings(old: dict[str, Any], new: dict[str, Any], path: Path, instead: str) -> None:
    """Refuse to resume the run saved in ``path`` (settings ``old``) with other settings:
    one line naming each change, and ``instead`` what to do."""
    diff = sorted(k for k in new if old.get(k) != new[k])
    if diff:
        changes = ", ".join(f"{k}: {old.get(k)!r} -> {new[k]!r}" for k in diff)
        raise CheckpointError(
            f"{path}: cannot resume with different settings ({changes}); {instead} or the "
            "original settings"
        )


def load_supernet(path: str | Path, map_location: str | torch.device = "cpu") -> Supernet:
    """The trained supernet stored in a checkpoint (eval mode).

    Its BatchNorm statistics are calibrated for the largest subnet; use ``calibrated_subnet``
    (or ``Supernet.calibrate_bn``) before evaluating or extracting any other subnet.
    """
    state = load_checkpoint(path, map_location)
    supernet = Supernet(SupernetSpace.from_dict(state["space"]))
    supernet.load_state_dict(state["model"])
    return supernet.to(map_location).eval()
