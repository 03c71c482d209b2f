"""Latency in milliseconds on the STM32F746 at 216 MHz, from any target's counts.

A board's DWT counts core cycles: milliseconds = cycles / 216 MHz, measured.

QEMU (and Renode) count instructions, which have no duration: milliseconds there are an
estimate from a stated cycles-per-instruction model of the Cortex-M7 as the stm32f746
firmware configures it (216 MHz, 7 flash wait states, L1 I- and D-cache on, arena in
DTCM / SRAM), per layer:

    cycles = CPI_CORE x instructions + FLASH_LINE_CYCLES x ceil(layer constants / LINE_BYTES)

- CPI_CORE: the M7 issues two instructions in a cycle when a load/store pairs with an ALU or
  MAC op; the kernels' inner loops pair about half of theirs (~0.7 CPI), the code around
  them (calls, requantisation, branches, load-use stalls) runs near 1. Code runs from the
  I-cache after its first pass (the kernels' loops are far smaller than 4 KB).
- the flash term: each 32-byte line of a layer's constants (weights, bias, tables) is read
  once per inference through the D-cache from flash on the AXIM bus (0x0800_0000, where the
  ART does not serve), 7 wait states + 2 bus cycles per line refill. A kernel that re-reads
  weights larger than the 4 KB D-cache (one pass per token tile) misses more often than this.

When the latency samples hold board cycles and QEMU instructions of the same layer (same
op kind and work, same firmware id), their ratio replaces the model for that op kind:
calibrated, flash included. ``tinyformer bench cpi`` writes that comparison to
``results/board_vs_qemu.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tinyformer.boards import BOARDS, MS_BOARD
from tinyformer.compiler.source_hash import firmware_id
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.ir import Graph
from tinyformer.hil.measure import Measurement
from tinyformer.perf.latency import SampleStore, op_features
from tinyformer.results import now_iso, write_atomic

CLOCK_HZ = BOARDS[MS_BOARD].clock_hz
CPI_CORE = 0.8
LINE_BYTES = 32
FLASH_LINE_CYCLES = 9  # 7 wait states at 216 MHz + 2 cycles on the bus
BOARD_VS_QEMU = "board_vs_qemu.csv"
CALIBRATION_COLUMNS = ["op", "features", "instructions", "cycles", "cpi", "models", "firmware"]


MEASURED = f"measured: DWT cycles / {CLOCK_HZ / 1e6:g} MHz"


def _estimate(how: str) -> str:
    return f"estimate at {CLOCK_HZ / 1e6:g} MHz from instructions ({how}; README)"


def ms(cycles: float) -> float:
    """Milliseconds of ``cycles`` at the STM32F746's 216 MHz."""
    return cycles / CLOCK_HZ * 1e3


def board_vs_qemu(samples: pd.DataFrame) -> pd.DataFrame:
    """One row per layer signature measured on both: board cycles vs QEMU instructions
    (medians), with the current firmware id only (older counts are stale)."""
    current = samples[samples["firmware"] == firmware_id()]
    key = ["op", "features"]

    def side(target: str, unit: str) -> pd.DataFrame:
        rows = current[(current["target"] == target) & (current["unit"] == unit)]
        return rows.groupby(key).agg(
            count=("count", "median"), models=("model_id", lambda m: " ".join(sorted(set(m))))
        )

    both = pd.merge(
        side("board", "cycles"),
        side("qemu", "instructions"),
        left_index=True,
        right_index=True,
        suffixes=("_board", "_qemu"),
    )
    table = pd.DataFrame(
        {
            "instructions": both["count_qemu"].round().astype(int),
            "cycles": both["count_board"].round().astype(int),
            "models": both["models_board"],
        }
    ).reset_index()
    table["cpi"] = (table["cycles"] / table["instructions"].clip(lower=1)).round(4)
    table["firmware"] = firmware_id()
    return table[CALIBRATION_COLUMNS]


@dataclass(frozen=True)
class CycleModel:
    """Cycles on the STM32F746 from instructions: the stated model, or per op kind the
    board-measured ratio (``cpi``) where the samples have one."""

    cpi: dict[str, float]  # op kind -> cycles per instruction measured on the board
    layers: int = 0  # matched layer signatures behind ``cpi``
    overall: float | None = None  # cycles per instruction over all of them

    @classmethod
    def from_results(cls, results: Path) -> CycleModel:
        table = board_vs_qemu(SampleStore(results).load())
        if table.empty:
            return cls({})
        sums = table.groupby("op")[["cycles", "instructions"]].sum()
        overall = float(table["cycles"].sum() / table["instructions"].sum())
        return cls((sums["cycles"] / sums["instructions"]).to_dict(), len(table), overall)

    def basis(self, kinds: Sequence[str]) -> str:
        """How the milliseconds of layers of these op kinds were obtained."""
        calibrated = sum(k in self.cpi for k in kinds)
        if calibrated == len(kinds) and kinds:
            how = f"calibrated on {self.layers} layers measured on the board"
        elif calibrated:
            how = f"{calibrated} of {len(kinds)} layers calibrated on the board, the rest"
            how += " by the Cortex-M7 CPI model"
        else:
            how = "Cortex-M7 CPI model"
        return _estimate(how)

    def layer_cycles(self, kind: str, instructions: float, constant_bytes: int) -> float:
        if kind in self.cpi:
            return self.cpi[kind] * instructions
        lines = math.ceil(constant_bytes / LINE_BYTES)
        return CPI_CORE * instructions + FLASH_LINE_CYCLES * lines


@dataclass(frozen=True)
class Timing:
    """One inference's latency at 216 MHz, per layer and in all, and how it was obtained."""

    cycles: float
    layer_cycles: list[float | None]
    basis: str
    measured: bool  # cycles counted by the board, not estimated

    @property
    def ms(self) -> float:
        return ms(self.cycles)

    @property
    def layer_ms(self) -> list[float | None]:
        return [None if c is None else ms(c) for c in self.layer_cycles]


def timing(
    graph: Graph,
    layer_counts: Sequence[float | None],
    unit: str,
    cycle_model: CycleModel,
    total: float | None = None,
) -> Timing:
    """Cycles and milliseconds of ``graph``'s layers from counts in ``unit`` (a run's, or a
    prediction's: None for a layer it has no count of). ``total``: the whole inference's
    count when it is more than the layers' (the runtime between them), as estimated at
    CPI_CORE."""
    if unit == "cycles":
        cycles = [None if c is None else float(c) for c in layer_counts]
        outside = 0.0 if total is None else total - sum(c or 0 for c in layer_counts)
        known = [c for c in cycles if c is not None]
        whole = sum(known) + outside
        return Timing(whole, cycles, MEASURED, True)
    if unit != "instructions":
        raise ValueError(f"no milliseconds from counts in {unit!r}")
    constants = generate(graph, plan_graph(graph)).layer_constant_bytes
    kinds = [op_features(node, graph)[0] for node in graph.nodes]
    cycles = [
        None if c is None else cycle_model.layer_cycles(kind, float(c), flash)
        for kind, c, flash in zip(kinds, layer_counts, constants, strict=True)
    ]
    outside = 0.0 if total is None else total - sum(c or 0 for c in layer_counts)
    whole = sum(c for c in cycles if c is not None) + CPI_CORE * outside
    return Timing(whole, cycles, cycle_model.basis(kinds), False)


def inference_ms(graph: Graph, count: float, unit: str, cycle_model: CycleModel) -> Timing:
    """One inference's latency known only by its total count (no per-layer counts): with a
    board calibration, its overall cycles per instruction; else the stated model over all
    the model's constants."""
    if unit == "cycles":
        return Timing(float(count), [], MEASURED, True)
    if unit != "instructions":
        raise ValueError(f"no milliseconds from counts in {unit!r}")
    if cycle_model.overall is not None:
        how = f"calibrated on {cycle_model.layers} layers measured on the board"
        return Timing(cycle_model.overall * count, [], _estimate(how), False)
    constants = generate(graph, plan_graph(graph)).layer_constant_bytes
    lines = sum(math.ceil(c / LINE_BYTES) for c in constants)
    cycles = CPI_CORE * count + FLASH_LINE_CYCLES * lines
    return Timing(cycles, [], _estimate("Cortex-M7 CPI model"), False)


def run_latency(graph: Graph, m: Measurement, results: Path) -> dict[str, object]:
    """A run's latency fields: ``latency_ms`` at 216 MHz and how it was obtained."""
    t = timing(graph, m.layer_counts, m.count_unit, CycleModel.from_results(results), m.total)
    basis = t.basis
    if t.measured and m.clock_hz != CLOCK_HZ:  # a board left on its 16 MHz HSI, say
        basis += f"; the board ran at {m.clock_hz / 1e6:g} MHz, not 216: fewer flash wait states"
    return {"latency_ms": round(t.ms, 3), "latency_ms_basis": basis}


STATED = CycleModel({})  # no board calibration: the stated Cortex-M7 CPI model
STATED_BASIS = STATED.basis([])


def count_ms(count: float, unit: str, constant_bytes: int) -> float:
    """Milliseconds at 216 MHz of one layer's count where no graph stands behind it (a kernel
    bench's hand-written layers): cycles as measured, instructions by the stated model with
    ``constant_bytes`` read once from flash (``STATED_BASIS`` says so)."""
    if unit == "cycles":
        return ms(count)
    if unit != "instructions":
        raise ValueError(f"no milliseconds from counts in {unit!r}")
    return ms(STATED.layer_cycles("", count, constant_bytes))


def inference_latency(graph: Graph, count: float, unit: str, results: Path) -> dict[str, object]:
    """The latency fields of an inference known by its total count (evaluate's mean, say):
    ``latency_ms`` at 216 MHz and how it was obtained, as ``run_latency`` gives a run's."""
    t = inference_ms(graph, count, unit, CycleModel.from_results(results))
    return {"latency_ms": round(t.ms, 3), "latency_ms_basis": t.basis}


def write_board_vs_qemu(results: Path) -> pd.DataFrame:
    """``results/board_vs_qemu.csv``: the layers measured on both, the calibration's data."""
    table = board_vs_qemu(SampleStore(results).load())
    table["time"] = now_iso()
    write_atomic(table, Path(results) / BOARD_VS_QEMU)
    return table
