"""Torch files (subnets, supernet checkpoints, QAT checkpoints): written atomically, read
without running pickled code."""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import torch

from tinyformer.atomic_write import write_atomic_bytes


class TorchFileError(ValueError):
    """A file that torch.load cannot read as tensors and plain data."""


def save(obj: Any, path: str | Path) -> Path:
    """torch.save through a temporary file and a rename: a crash leaves the old file whole."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return write_atomic_bytes(buf.getvalue(), Path(path))


def check_format(
    state: Any, path: str | Path, fmt: str, version: int, what: str, error: type[Exception]
) -> dict[str, Any]:
    """``state``, loaded from ``path``, if it is a ``fmt`` dict of ``version``; else ``error``
    in one line: not a TinyFormer ``what`` at all, or one of a version this code cannot read."""
    if not isinstance(state, dict) or state.get("format") != fmt:
        raise error(f"{path} is not a TinyFormer {what}")
    if state.get("version") != version:
        raise error(
            f"{path}: {what} version {state.get('version')} is not supported (expected {version})"
        )
    return state


def load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load(weights_only=True). A file it cannot read is one line of error: torch's own
    message about weights_only advises turning it off, which is wrong for a file of unknown
    origin."""
    with open(path, "rb") as fh:  # FileNotFoundError as it is
        head = fh.read(4)
    # torch.save writes a zip archive; files from before torch 1.6 are a bare pickle
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):
        raise TorchFileError(f"{path} is not a torch file")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError:
        raise TorchFileError(
            f"{path} is not a file TinyFormer wrote: not a pickle of tensors and plain data only"
        ) from None
    except Exception as exc:
        text = str(exc).strip()
        if "PytorchStreamReader" in text:  # torch's zip container, cut short or damaged
            reason = "it is truncated or corrupt"
        else:
            reason = text.splitlines()[0].split(". ")[0] if text else type(exc).__name__
        raise TorchFileError(f"{path} is not a readable torch file: {reason}") from None
