"""Sparsity plans: per-layer block size and block sparsity, JSON-serialisable.

A plan maps a layer name (the ``Subnet`` module path of a dense conv or linear:
``stem.conv``, ``stages.0.blocks.1.expand.conv``, ``stages.1.embed``,
``stages.1.blocks.0.attn.q``, ``classifier``; the names the engine graph and SparseNAS use)
to a ``LayerSparsity(block, sparsity)``: blocks of ``block`` consecutive weights along the
layer's input dimension (the engine's row, see :mod:`tinyformer.prune.blocks`), of which the
fraction ``sparsity`` is zeroed. Layers not in the plan stay dense.

JSON form (``to_json`` / ``from_json``)::

    {"version": 1, "layers": {"stages.0.blocks.0.expand.conv": {"block": 4, "sparsity": 0.5}}}

``from_dict`` also takes the bare mapping SparseNAS uses, ``{layer: [block, sparsity]}``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from tinyformer.engine.sparse_format import BLOCKS
from tinyformer.json_document import JsonDocument
from tinyformer.prune.prunable import prunable_modules

PLAN_VERSION = 1
# Layers a uniform plan leaves dense by default: the first conv sees raw pixels through a
# handful of weights per row, and the classifier is tiny; both are sensitive to pruning.
DEFAULT_SKIP = ("stem.conv", "classifier")


class PlanError(ValueError):
    """A sparsity plan is malformed or does not fit the model."""


@dataclass(frozen=True)
class LayerSparsity:
    block: int
    sparsity: float

    def __post_init__(self) -> None:
        if isinstance(self.block, bool) or int(self.block) != self.block:
            raise PlanError(f"block must be an int, got {self.block!r}")
        object.__setattr__(self, "block", int(self.block))
        object.__setattr__(self, "sparsity", float(self.sparsity))
        if self.block not in BLOCKS:
            raise PlanError(f"block size must be one of {BLOCKS}, got {self.block}")
        if not (0.0 <= self.sparsity <= 1.0) or math.isnan(self.sparsity):
            raise PlanError(f"sparsity must be in [0, 1], got {self.sparsity}")


@dataclass
class SparsityPlan(JsonDocument):
    """Per-layer (block size, block sparsity); see the module docstring."""

    json_what = "sparsity plan"
    json_error = PlanError

    layers: dict[str, LayerSparsity] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.layers = {
            str(k): v if isinstance(v, LayerSparsity) else LayerSparsity(*v)
            for k, v in self.layers.items()
        }

    def __len__(self) -> int:
        return len(self.layers)

    def __contains__(self, name: object) -> bool:
        return name in self.layers

    def __getitem__(self, name: str) -> LayerSparsity:
        return self.layers[name]

    def items(self) -> Iterable[tuple[str, LayerSparsity]]:
        return self.layers.items()

    def get(self, name: str) -> LayerSparsity | None:
        return self.layers.get(name)

    def as_mapping(self) -> dict[str, tuple[int, float]]:
        """``{layer: (block, sparsity)}``: the SparseNAS ``Plan`` form."""
        return {k: (v.block, v.sparsity) for k, v in sorted(self.layers.items())}

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "layers": {
                k: {"block": v.block, "sparsity": v.sparsity}
                for k, v in sorted(self.layers.items())
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SparsityPlan:
        if not isinstance(data, Mapping):
            raise PlanError(f"sparsity plan: expected an object, got {type(data).__name__}")
        if "layers" in data:
            version = data.get("version", PLAN_VERSION)
            if version != PLAN_VERSION:
                raise PlanError(f"sparsity plan version {version!r} is not supported")
            entries = data["layers"]
        else:  # the bare {layer: [block, sparsity]} mapping
            entries = data
        if not isinstance(entries, Mapping):
            raise PlanError("sparsity plan: 'layers' must be an object")
        layers = {}
        for name, value in entries.items():
            try:
                if isinstance(value, Mapping):
                    extra = set(value) - {"block", "sparsity"}
                    if extra:
                        raise PlanError(f"unknown keys {sorted(extra)}")
                    layers[name] = LayerSparsity(value["block"], value["sparsity"])
                else:
                    block, sparsity = value
                    layers[name] = LayerSparsity(block, sparsity)
            except (KeyError, TypeError, ValueError) as exc:
                raise PlanError(f"sparsity plan, layer {name!r}: {exc}") from exc
        return cls(layers)

    @classmethod
    def uniform(
        cls,
        model: nn.Module,
        sparsity: float,
        block: int = 4,
        skip: Iterable[str] = DEFAULT_SKIP,
    ) -> SparsityPlan:
        """The same (block, sparsity) for every prunable layer of ``model`` not in ``skip``."""
        skip = set(skip)
        return cls(
            {
                name: LayerSparsity(block, sparsity)
                for name in prunable_modules(model)
                if name not in skip
            }
        )

    def scaled(self, fraction: float) -> SparsityPlan:
        """Every layer's sparsity times ``fraction`` (the gradual schedule's intermediate)."""
        return SparsityPlan(
            {k: LayerSparsity(v.block, v.sparsity * fraction) for k, v in self.layers.items()}
        )

    def check(self, model: nn.Module) -> None:
        """Raise ``PlanError`` if a layer is not a prunable layer of ``model``."""
        names = prunable_modules(model)
        unknown = sorted(set(self.layers) - set(names))
        if unknown:
            raise PlanError(
                f"sparsity plan names layers the model does not have (or that cannot be "
                f"pruned: depthwise convs and norms): {unknown}; prunable: {sorted(names)}"
            )
