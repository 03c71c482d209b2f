"""Errors of turning a model into firmware: each carries the compiler's or linker's words."""

from __future__ import annotations

from tinyformer.errors import ToolError


class FirmwareBuildError(ToolError):
    """The firmware did not compile or link (the message carries the compiler's words)."""


class DoesNotFitError(FirmwareBuildError):
    """The model overflows the flash or RAM budget."""
