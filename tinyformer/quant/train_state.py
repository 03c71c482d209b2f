"""``train``'s checkpoint, ``OUT/train_state.pt``: where a run of the pipeline stands after
its last completed epoch (phase, epoch, every model, optimizer, scheduler, gradient scaler,
random generators, history and metrics so far), written atomically after every epoch.

``train --resume`` continues from there and ends with the model an uninterrupted run with
the same settings gives (bit for bit on the same device and thread count). A finished run
removes the file: its products are the model files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tinyformer.model import torch_file
from tinyformer.model.checkpoint import CheckpointError, check_settings

TRAIN_STATE = "train_state.pt"
STATE_FORMAT = "tinyformer-train-state"
STATE_VERSION = 1
PHASES = ("float", "prune", "qat")


def rng_state(gen: torch.Generator) -> dict[str, Any]:
    """The batch generator and torch's global generators (CPU, CUDA)."""
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
    return {"generator": gen.get_state(), "torch": torch.get_rng_state(), "cuda": cuda}


def set_rng_state(state: dict[str, Any], gen: torch.Generator) -> None:
    gen.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class TrainState:
    """The checkpoint of one output folder: an interrupted run's (``resume``) or a new one.

    ``settings``: what a resumed run must share with the run that wrote the checkpoint.
    Without ``resume`` an existing checkpoint is refused rather than overwritten, so an
    interrupted run's epochs are never thrown away by a second run into the same folder.
    """

    def __init__(self, out: Path, settings: dict[str, Any], resume: bool) -> None:
        self.path = Path(out) / TRAIN_STATE
        self.settings = settings
        self.saved: dict[str, Any] | None = None
        if not resume:
            if self.path.exists():
                raise CheckpointError(
                    f"{self.path}: an interrupted run is saved there; pass --resume to continue "
                    "it, or another output folder (or delete the file) to start over"
                )
            return
        if not self.path.exists():
            raise CheckpointError(
                f"{self.path}: no interrupted run to resume (a finished run leaves none); "
                "run without --resume"
            )
        try:
            state = torch_file.load(self.path)
        except torch_file.TorchFileError as exc:
            raise CheckpointError(f"cannot resume: {exc}") from None
        torch_file.check_format(
            state, self.path, STATE_FORMAT, STATE_VERSION, "training checkpoint", CheckpointError
        )
        check_settings(state["settings"], settings, self.path, "start a new output folder")
        self.saved = state

    @property
    def where(self) -> str:
        """``phase epoch N`` of the saved state, for the resume message."""
        return "" if self.saved is None else f"{self.saved['phase']} epoch {self.saved['epoch']}"

    def resumes(self, phase: str) -> dict[str, Any] | None:
        """The saved state when the run stopped inside (or at the end of) ``phase``."""
        return self.saved if self.saved is not None and self.saved["phase"] == phase else None

    def reached(self, phase: str) -> bool:
        """Whether the saved run had got to ``phase`` (resumed in it or after it)."""
        return self.saved is not None and PHASES.index(self.saved["phase"]) >= PHASES.index(phase)

    def save(self, phase: str, epoch: int, parts: dict[str, Any]) -> None:
        """The state after ``epoch`` completed epochs of ``phase``; atomic."""
        state = {"format": STATE_FORMAT, "version": STATE_VERSION, "settings": self.settings}
        torch_file.save({**state, "phase": phase, "epoch": epoch, **parts}, self.path)

    def finish(self) -> None:
        self.path.unlink(missing_ok=True)
