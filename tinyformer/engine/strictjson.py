"""JSON for untrusted file headers: bounded nesting, no duplicate keys, no NaN or Infinity.

``json.loads`` recurses once per nested array or object, so a header of a few kilobytes of
``[[[[...`` raises RecursionError from deep inside the parser; the nesting is measured
before parsing instead. A duplicate key would silently replace the first (two tensors of one
name would become one), and NaN / Infinity are not JSON. Every problem is a ValueError.
"""

from __future__ import annotations

import json
import re
from typing import Any

MAX_DEPTH = 32  # a model header nests about 7 deep (meta: the subnet's config)

# What changes the nesting: brackets, and quotes and backslashes (brackets in strings do not).
_SPECIAL = re.compile(rb'[\\"\[\]{}]')


def check_depth(text: bytes, max_depth: int) -> None:
    """ValueError if arrays and objects in ``text`` nest deeper than ``max_depth``. Unclosed
    ones count, so this is never below what the parser would recurse to, even for malformed
    text; one pass over the special bytes (a regex for strings could take quadratic time)."""
    depth, in_string, escaped_at = 0, False, -1
    for m in _SPECIAL.finditer(text):
        pos = m.start()
        ch = text[pos]
        if in_string:
            if pos == escaped_at:
                continue
            if ch == ord("\\"):
                escaped_at = pos + 1
            elif ch == ord('"'):
                in_string = False
        elif ch == ord('"'):
            in_string = True
        elif ch in b"[{":
            depth += 1
            if depth > max_depth:
                raise ValueError(f"nested more than {max_depth} deep")
        elif ch in b"]}":
            depth -= 1


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads(text: bytes, max_depth: int = MAX_DEPTH) -> Any:
    """Parse UTF-8 JSON ``text``; ValueError if it is malformed, nested deeper than
    ``max_depth``, repeats a key in an object or holds NaN / Infinity."""
    check_depth(text, max_depth)
    return json.loads(
        text.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant
    )
