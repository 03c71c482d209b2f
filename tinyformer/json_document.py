"""The JSON file round trip of a class that has ``to_dict`` / ``from_dict``.

A subnet config and a sparsity plan are both saved as one JSON object: the text form, the
parse error as the class's own one-line error, and the atomic save are the same for each.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from tinyformer.atomic_write import write_atomic_text


class JsonDocument:
    """Mixin: ``to_json`` / ``from_json`` / ``save`` / ``load`` over ``to_dict`` / ``from_dict``.

    A subclass names what it is (``json_what``, for the error) and the error it raises.
    """

    json_what: ClassVar[str]
    json_error: ClassVar[type[Exception]]

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        raise NotImplementedError

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Self:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise cls.json_error(f"{cls.json_what} is not valid JSON: {exc}") from exc
        return cls.from_dict(data)

    def save(self, path: str | Path) -> Path:
        return write_atomic_text(self.to_json() + "\n", Path(path))

    @classmethod
    def load(cls, path: str | Path) -> Self:
        return cls.from_json(Path(path).read_text())
