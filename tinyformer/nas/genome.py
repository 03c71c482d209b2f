"""SparseNAS genomes: a subnet config plus a per-layer block-sparsity plan.

A candidate is one single-path subnet of the supernet and, for every weight matrix the
engine can store block-sparse, a block size (1, 2, 4, 8, 16) and a block sparsity. Mutation
redraws each choice with a small probability; crossover takes each choice from either
parent. The stem and the classifier stay dense (few weights, the most sensitive). Layers
that a config change removes drop out of the plan, new ones get random choices, so every
candidate's plan covers exactly its own layers.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from tinyformer.engine.sparse_format import BLOCKS
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.nas.candidate import Plan, prunable_layers
from tinyformer.prune import DEFAULT_SKIP, SparsityPlan

SPARSITIES = (0.0, 0.5, 0.75, 0.9)
_ELASTIC = ("depth", "width", "kernel_size", "expand_ratio", "heads", "mlp_ratio")


@dataclass(frozen=True)
class Candidate:
    config: SubnetConfig
    plan: tuple[tuple[str, int, float], ...]  # (layer, block, sparsity), sorted by layer

    def plan_dict(self) -> Plan:
        return {layer: (block, sparsity) for layer, block, sparsity in self.plan}

    def to_dict(self) -> dict[str, Any]:
        return {"config": self.config.to_dict(), "plan": [list(p) for p in self.plan]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        plan = tuple((str(a), int(b), float(s)) for a, b, s in data["plan"])
        return cls(SubnetConfig.from_dict(data["config"]), plan)

    @property
    def key(self) -> str:
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def sparsity_plan(self) -> SparsityPlan:
        """The plan ``train --plan`` takes: every layer the candidate prunes."""
        return SparsityPlan.from_dict({k: [b, s] for k, b, s in self.plan if s > 0})

    def weight_sparsity(self) -> float:
        """Fraction of all prunable weights that the plan removes."""
        sizes = {k: r * c for k, (r, c) in prunable_layers(self.config).items()}
        total = sum(sizes.values())
        return sum(sizes[layer] * s for layer, _, s in self.plan) / total if total else 0.0


def _plan(config: SubnetConfig, old: Plan, rng: np.random.Generator, p: float) -> tuple:
    plan = []
    for layer in sorted(set(prunable_layers(config)) - set(DEFAULT_SKIP)):
        block, sparsity = old.get(layer, (int(rng.choice(BLOCKS)), float(rng.choice(SPARSITIES))))
        if rng.random() < p:
            block = int(rng.choice(BLOCKS))
        if rng.random() < p:
            sparsity = float(rng.choice(SPARSITIES))
        plan.append((layer, block, sparsity))
    return tuple(plan)


def _mix(a: SubnetConfig, b: SubnetConfig, rng: np.random.Generator, p: float) -> SubnetConfig:
    """``a`` with each elastic choice taken from ``b`` with probability ``p``."""
    da, db = a.to_dict(), b.to_dict()
    if rng.random() < p:
        da["stem_width"] = db["stem_width"]
    for sa, sb in zip(da["stages"], db["stages"], strict=True):
        for field in _ELASTIC:
            if field in sa and rng.random() < p:
                sa[field] = sb[field]
    return SubnetConfig.from_dict(da)


def random_candidate(space: SupernetSpace, rng: np.random.Generator) -> Candidate:
    config = space.sample(rng)
    return Candidate(config, _plan(config, {}, rng, 0.0))


def mutate(c: Candidate, space: SupernetSpace, rng: np.random.Generator, p: float = 0.2):
    config = _mix(c.config, space.sample(rng), rng, p)
    return Candidate(config, _plan(config, c.plan_dict(), rng, p))


def crossover(a: Candidate, b: Candidate, rng: np.random.Generator) -> Candidate:
    config = _mix(a.config, b.config, rng, 0.5)
    pa, pb = a.plan_dict(), b.plan_dict()
    # sorted: a set's order changes with each process's string hashing, and so would the
    # draws each layer gets, and the search would not repeat
    merged = {
        k: (pb if k in pb and (k not in pa or rng.random() < 0.5) else pa)[k]
        for k in sorted({*pa, *pb})
    }
    return Candidate(config, _plan(config, merged, rng, 0.0))
