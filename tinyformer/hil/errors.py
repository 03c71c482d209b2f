"""Errors the harness raises: each says what went wrong in words a user can act on."""

from __future__ import annotations

from tinyformer.errors import ToolError


class HilError(ToolError):
    """Base class: anything that stops a measurement."""


class LinkError(HilError):
    """The serial link failed: no reply after retries, or replies that never decode."""


class LinkNoise(LinkError):
    """Replies keep arriving damaged: the device is alive, the line is too noisy."""


class InputLost(LinkError):
    """The device no longer holds the input of the inference in progress (consumed by a run,
    wiped by a reset): the client starts that inference again from INPUT."""


class BootLoop(HilError):
    """The firmware keeps restarting (watchdog, brown-out, a fault handler that resets)."""


class WrongFirmware(HilError):
    """The device that answers runs another model than the firmware we started (wrong port)."""


class TargetTimeout(HilError):
    """The firmware stopped answering: it hangs (the emulator was killed)."""


class TargetFault(HilError):
    """The firmware faulted and reported its context."""

    def __init__(self, message: str, fault: object) -> None:
        super().__init__(message)
        self.fault = fault


class TargetUnavailable(HilError):
    """The target cannot be used on this machine (tool missing, no probe)."""


class DataMismatch(HilError):
    """Test data the model was not made for: another input shape or number of classes."""
