"""Errors of turning a model into firmware: each carries the compiler's or linker's words."""

from __future__ import annotations

from tinyformer.errors import ToolError


class FirmwareBuildError(ToolError):
    """The firmware did not compile or link (the message carries the compiler's words)."""


class DoesNotFitError(FirmwareBuildError):
    """The model overflows the flash or RAM budget. ``flash_bytes`` and ``ram_bytes`` (what the
    linker would place in RAM: static + reserved stack) are what it needs at least, where known:
    a search records them and marks the model infeasible."""

    def __init__(
        self, message: str, flash_bytes: int | None = None, ram_bytes: int | None = None
    ) -> None:
        super().__init__(message)
        self.flash_bytes = flash_bytes
        self.ram_bytes = ram_bytes
