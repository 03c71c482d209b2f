"""Build a target by name: the one place that knows every target."""

from __future__ import annotations

from typing import Any

from tinyformer.hil.errors import TargetUnavailable
from tinyformer.hil.targets.base import Target

TARGETS = ("qemu", "renode", "board")


def make_target(name: str, **options: Any) -> Target:
    """Build a target from its name and the options that apply to it (None ones dropped)."""
    options = {k: v for k, v in options.items() if v is not None}
    if name == "qemu":
        from tinyformer.hil.targets.qemu import QemuTarget

        return QemuTarget(**options)
    if name == "renode":
        from tinyformer.hil.targets.renode import RenodeTarget

        return RenodeTarget(**options)
    if name == "board":
        from tinyformer.hil.targets.board import BoardTarget

        return BoardTarget(**options)
    raise TargetUnavailable(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}")
