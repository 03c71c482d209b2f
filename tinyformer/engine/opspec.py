"""What an op declares about its node: operands (arity, kind, dtype) and attributes (type,
range). opset.py gives every op its spec next to its reference and emitter, so adding an op
is one entry; :mod:`tinyformer.engine.validate` checks nodes against them.

A failed check raises :class:`Invalid` naming the field; the validator adds the node.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyformer.engine.graph import IRFormatError, field_path


class Invalid(IRFormatError):
    """One field of a node is wrong: ``str(exc)`` is "<field>: <what>"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")


def is_int(value: Any) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool | np.bool_)


def int_list(field: str, value: Any) -> list[int]:
    """``value`` as a list of Python ints (a list, tuple or 1-D integer array)."""
    if isinstance(value, np.ndarray):
        if value.ndim != 1:
            raise Invalid(field, f"must be a list of integers, got a {value.ndim}-D array")
        value = value.tolist()
    if not isinstance(value, list | tuple) or not all(is_int(v) for v in value):
        raise Invalid(field, f"must be a list of integers, got {_show(value)}")
    return [int(v) for v in value]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class Int:
    """An integer in [lo, hi]; ``length``: a list of that many (None: a list of any length >= 1;
    0: a single integer)."""

    lo: int
    hi: int
    length: int | None = 0

    def check(self, field: str, value: Any) -> None:
        if self.length == 0:
            if not is_int(value):
                raise Invalid(field, f"must be an integer, got {_show(value)}")
            values = [int(value)]
        else:
            values = int_list(field, value)
            if self.length is None and not values:
                raise Invalid(field, "must not be empty")
            if self.length is not None and len(values) != self.length:
                raise Invalid(field, f"must have {self.length} values, got {len(values)}")
        bad = [v for v in values if not self.lo <= v <= self.hi]
        if bad:
            raise Invalid(field, f"{bad[0]} is out of range {self.lo}..{self.hi}")

    def list(self) -> Int:
        """The same range, as a per-channel list (its length is the op's to check)."""
        return Int(self.lo, self.hi, None)


@dataclass(frozen=True)
class OneOf:
    """An integer from ``values``."""

    values: tuple[int, ...]

    def check(self, field: str, value: Any) -> None:
        if not is_int(value) or int(value) not in self.values:
            raise Invalid(field, f"must be one of {list(self.values)}, got {_show(value)}")


@dataclass(frozen=True)
class Attr:
    kind: Int | OneOf
    required: bool = True


def optional(kind: Int | OneOf) -> Attr:
    return Attr(kind, required=False)


@dataclass(frozen=True)
class Operand:
    """One input of an op: an activation (runtime int8) or a constant of ``dtype``."""

    role: str  # for messages: "x", "weights", "bias", ...
    constant: bool = False
    dtype: str = "int8"
    optional: bool = False  # may be left out (trailing operands only)
    sparse: bool = False  # may be stored block-sparse (encoding "block-rle")
    either: bool = False  # an activation or a constant (``constant`` then does not apply)


def check_attrs(spec: Mapping[str, Attr], attrs: Any) -> None:
    """Every attribute known, every required one present, each of its type and range."""
    if not isinstance(attrs, dict):
        raise Invalid("attrs", f"must be an object, got {_show(attrs)}")
    for key in attrs:
        if key not in spec:
            known = ", ".join(sorted(spec)) or "none"
            raise Invalid(field_path("attrs", key), f"unknown attribute (this op takes: {known})")
    for key, attr in spec.items():
        if key in attrs:
            attr.kind.check(f"attrs.{key}", attrs[key])
        elif attr.required:
            raise Invalid(f"attrs.{key}", "missing")
