"""Field checks shared by the architecture configs and spaces; errors name the bad field."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import MISSING, fields
from typing import Any

import numpy as np


class ConfigError(ValueError):
    """An architecture config is malformed or outside its search space."""


def check_int(where: str, value: Any, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{where}: must be an int >= {minimum}, got {value!r}")


def check_keys(where: str, data: Mapping, cls: type) -> None:
    """``data`` holds every required field of the dataclass ``cls`` and nothing else (but
    ``kind``)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected an object, got {type(data).__name__}")
    names = {f.name for f in fields(cls)}
    required = {
        f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING
    }
    unknown = sorted(set(data) - names - {"kind"})
    missing = sorted(required - set(data))
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown} (expected {sorted(names)})")
    if missing:
        raise ConfigError(f"{where}: missing keys {missing}")


def choices(where: str, values: Sequence[int]) -> tuple[int, ...]:
    """An elastic dimension's choices: ints >= 1, sorted, without repeats."""
    values = tuple(int(v) for v in values)
    if not values:
        raise ConfigError(f"{where}: needs at least one choice")
    for v in values:
        check_int(where, v)
    return tuple(sorted(set(values)))


def check_in(where: str, value: int, options: tuple[int, ...]) -> None:
    if value not in options:
        raise ConfigError(f"{where}: {value} is not one of the choices {list(options)}")


def int_fields(config: Any) -> dict[str, Any]:
    """A stage config's JSON form: its kind and every field as a plain int."""
    return {"kind": config.kind, **{f.name: int(getattr(config, f.name)) for f in fields(config)}}
