"""SuperNAS: choose the search space (supernet) before training one.

Candidate spaces scale the data set's default space: channel widths x {0.5, 0.75, 1, 1.25}
and the transformer stages' depth range (as is, or one block deeper). Training a supernet
per space would cost more than the search, so each space is scored from samples instead,
as MCUNet's TinyNAS does: draw subnets, keep those that meet the budgets (flash, SRAM from
the engine's own planner, latency from the fitted latency model when it covers the ops),
and score the space by the mean MACs of its feasible subnets (within a budget, models with
more computation reach higher accuracy, so a space whose feasible subnets are large has the
better potential), times the fraction that is feasible (a space that mostly overflows
wastes supernet capacity on subnets that cannot deploy).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tinyformer.atomic_write import write_atomic_text
from tinyformer.boards import FLASH_BUDGET, RAM_BUDGET
from tinyformer.compiler.budget import estimate
from tinyformer.compiler.firmware import DEFAULT_STACK
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.ir import Graph
from tinyformer.engine.work import graph_macs
from tinyformer.model.blocks.transformer import TransformerStageSpace
from tinyformer.model.config import SupernetSpace
from tinyformer.model.subnet import Subnet
from tinyformer.nas.candidate import config_graph
from tinyformer.perf.latency import LatencyModel

WIDTH_SCALES = (0.5, 0.75, 1.0, 1.25)


def estimate_budget(graph: Graph) -> tuple[int, int]:
    """(flash, RAM) in bytes that the firmware of ``graph`` takes at most: the constants the
    code generator emits (weights as stored, folded biases, requantization tables) + the most
    code the firmware can have, and the RAM the linker places (arena, counters, firmware
    buffers, the reserved stack; exact to 16 B). A subnet that fits these links."""
    plan = plan_graph(graph)
    need = estimate(graph, plan, generate(graph, plan), DEFAULT_STACK)
    return need.flash_max_bytes, need.ram_region_bytes


def _scale(values: tuple[int, ...], factor: float) -> tuple[int, ...]:
    return tuple(sorted({max(8, round(v * factor / 8) * 8) for v in values}))


def candidate_spaces(base: SupernetSpace) -> list[SupernetSpace]:
    spaces = []
    for factor in WIDTH_SCALES:
        for deeper in (False, True):
            stages = []
            for s in base.stages:
                s = dataclasses.replace(s, widths=_scale(s.widths, factor))
                if deeper and isinstance(s, TransformerStageSpace):
                    s = dataclasses.replace(s, depths=(*s.depths, max(s.depths) + 1))
                stages.append(s)
            name = f"{base.name}-w{factor:g}" + ("-deep" if deeper else "")
            spaces.append(
                dataclasses.replace(
                    base,
                    name=name,
                    stem_widths=_scale(base.stem_widths, factor),
                    stages=tuple(stages),
                )
            )
    return spaces


@dataclass
class SpaceScore:
    space: str
    samples: int
    feasible: int
    mean_feasible_macs: float
    score: float
    largest_params: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def score_space(
    space: SupernetSpace,
    samples: int,
    seed: int,
    max_latency: float | None = None,
    latency: LatencyModel | None = None,
    flash_budget: int = FLASH_BUDGET,
    ram_budget: int = RAM_BUDGET,
) -> SpaceScore:
    rng = np.random.default_rng(seed)
    feasible_macs = []
    for _ in range(samples):
        graph = config_graph(space.sample(rng), seed=seed)
        flash, sram = estimate_budget(graph)
        ok = flash <= flash_budget and sram <= ram_budget
        if ok and max_latency is not None and latency is not None and latency.covers(graph):
            ok = latency.predict(graph) <= max_latency
        if ok:
            feasible_macs.append(graph_macs(graph))
    mean = float(np.mean(feasible_macs)) if feasible_macs else 0.0
    with torch.device("meta"):  # a count needs shapes only
        params = Subnet.from_config(space.largest()).num_parameters()
    return SpaceScore(
        space.name, samples, len(feasible_macs), mean, mean * len(feasible_macs) / samples, params
    )


def choose_space(
    base: SupernetSpace,
    out_dir: Path,
    samples: int = 24,
    seed: int = 0,
    max_latency: float | None = None,
    latency: LatencyModel | None = None,
) -> tuple[SupernetSpace, list[SpaceScore]]:
    """Score every candidate space; write ``supernas.json`` with the scores and the reason."""
    spaces = candidate_spaces(base)
    scores = [score_space(s, samples, seed, max_latency, latency) for s in spaces]
    best = max(range(len(spaces)), key=lambda i: scores[i].score)
    chosen = spaces[best]
    reason = (
        f"{chosen.name}: {scores[best].feasible}/{samples} sampled subnets fit "
        f"{FLASH_BUDGET // 1024} KB flash / {RAM_BUDGET // 1024} KB SRAM"
        + (f" and {max_latency:,.0f} counts" if max_latency and latency else "")
        + f", mean {scores[best].mean_feasible_macs:,.0f} MACs: the highest feasible "
        "computation x feasible fraction of the candidates (MCUNet's space-selection rule)"
    )
    report = {
        "chosen": chosen.name,
        "reason": reason,
        "space": chosen.to_dict(),
        "candidates": [s.to_dict() for s in scores],
    }
    write_atomic_text(json.dumps(report, indent=2), Path(out_dir) / "supernas.json")
    return chosen, scores
