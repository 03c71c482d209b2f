"""The base of every error the tool reports as one clear line (the CLI catches it)."""

from __future__ import annotations


class ToolError(RuntimeError):
    """Something the user can act on: a build that fails, a target that fails, bad input."""
