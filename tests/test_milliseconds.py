"""Milliseconds at 216 MHz: measured from board cycles, estimated from QEMU instructions by
the stated Cortex-M7 model, and calibrated once the samples hold both for the same layers."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest

from tinyformer.engine.builder import random_hybrid_graph
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.hil.measure import Measurement
from tinyformer.perf.latency import SampleStore, op_features, samples_of
from tinyformer.perf.milliseconds import (
    BOARD_VS_QEMU,
    CPI_CORE,
    FLASH_LINE_CYCLES,
    MEASURED,
    STATED_BASIS,
    CycleModel,
    count_ms,
    inference_ms,
    run_latency,
    timing,
    write_board_vs_qemu,
)

GRAPH = random_hybrid_graph(seed=3)


def instructions() -> list[int]:
    return [10_000 * (i + 1) for i in range(len(GRAPH.nodes))]


def test_board_cycles_are_milliseconds_at_216_mhz() -> None:
    t = timing(GRAPH, [216_000] * len(GRAPH.nodes), "cycles", CycleModel({}), total=None)
    assert t.measured and "measured" in t.basis
    assert t.ms == pytest.approx(len(GRAPH.nodes))  # 216,000 cycles = 1 ms each
    assert t.layer_ms == pytest.approx([1.0] * len(GRAPH.nodes))
    # the runtime between layers counts in the whole inference
    assert timing(GRAPH, [0] * len(GRAPH.nodes), "cycles", CycleModel({}), 432_000).ms == 2.0


def test_qemu_instructions_are_an_estimate_by_the_stated_model() -> None:
    counts = instructions()
    t = timing(GRAPH, counts, "instructions", CycleModel({}), total=sum(counts) + 1000)
    constants = generate(GRAPH, plan_graph(GRAPH)).layer_constant_bytes
    expected = [
        CPI_CORE * c + FLASH_LINE_CYCLES * math.ceil(b / 32)
        for c, b in zip(counts, constants, strict=True)
    ]
    assert t.layer_cycles == pytest.approx(expected)
    assert t.cycles == pytest.approx(sum(expected) + CPI_CORE * 1000)
    assert t.ms == pytest.approx(t.cycles / 216e3)
    assert not t.measured
    assert "estimate at 216 MHz" in t.basis and "CPI model" in t.basis
    # a layer without a count (a prediction the model has none of) stays without one
    partial = timing(GRAPH, [None, *counts[1:]], "instructions", CycleModel({}))
    assert partial.layer_ms[0] is None and partial.layer_ms[1] == pytest.approx(t.layer_ms[1])
    with pytest.raises(ValueError, match="no milliseconds"):
        timing(GRAPH, counts, "ticks", CycleModel({}))


def _store(results: Path, cpi: dict[str, float], firmware: str | None = None) -> None:
    """QEMU and board samples of GRAPH: the board's cycles are ``cpi`` x the instructions."""
    counts = instructions()
    qemu = samples_of(GRAPH, counts, "qemu", "instructions")
    kinds = [op_features(n, GRAPH)[0] for n in GRAPH.nodes]
    cycles = [round(c * cpi.get(k, 1.0)) for c, k in zip(counts, kinds, strict=True)]
    board = samples_of(GRAPH, cycles, "board", "cycles")
    rows = qemu + board
    if firmware is not None:
        rows = [{**r, "firmware": firmware} for r in rows]
    SampleStore(results).add(rows)


def test_board_measurements_calibrate_the_estimate(tmp_path: Path) -> None:
    linear = op_features(next(n for n in GRAPH.nodes if n.op == "linear"), GRAPH)[0]
    _store(tmp_path, {linear: 1.37})
    model = CycleModel.from_results(tmp_path)
    assert model.cpi[linear] == pytest.approx(1.37, rel=1e-3)
    assert model.layers == len(
        {(r["op"], r["features"]) for r in samples_of(GRAPH, instructions(), "q", "i")}
    )
    counts = instructions()
    t = timing(GRAPH, counts, "instructions", model)
    i = next(i for i, n in enumerate(GRAPH.nodes) if op_features(n, GRAPH)[0] == linear)
    assert t.layer_cycles[i] == pytest.approx(1.37 * counts[i], rel=1e-3)
    assert "calibrated on" in t.basis
    whole = inference_ms(GRAPH, 1e6, "instructions", model)
    assert whole.cycles == pytest.approx(model.overall * 1e6)
    assert "calibrated" in whole.basis
    # the comparison table: one row per layer signature measured on both
    write_board_vs_qemu(tmp_path)
    table = pd.read_csv(tmp_path / BOARD_VS_QEMU)
    assert len(table) == model.layers
    assert set(table.loc[table["op"] == linear, "cpi"].round(2)) == {1.37}


def test_stale_board_samples_do_not_calibrate(tmp_path: Path) -> None:
    _store(tmp_path, {}, firmware="0123456789ab")  # counts of other firmware sources
    model = CycleModel.from_results(tmp_path)
    assert model.cpi == {} and model.overall is None
    whole = inference_ms(GRAPH, 1e6, "instructions", model)
    assert "CPI model" in whole.basis
    constants = generate(GRAPH, plan_graph(GRAPH)).layer_constant_bytes
    lines = sum(math.ceil(b / 32) for b in constants)
    assert whole.cycles == pytest.approx(CPI_CORE * 1e6 + FLASH_LINE_CYCLES * lines)


def _run(unit: str, clock_hz: int) -> Measurement:
    counts = [216_000] * len(GRAPH.nodes)
    return Measurement(
        "m", "board", "dwt-cycles", unit, sum(counts), counts, 1, 1, 1, 1, b"", clock_hz=clock_hz
    )


def test_a_runs_ms_say_how_they_were_obtained(tmp_path: Path) -> None:
    at_216 = run_latency(GRAPH, _run("cycles", 216_000_000), tmp_path)
    assert at_216 == {"latency_ms": float(len(GRAPH.nodes)), "latency_ms_basis": MEASURED}
    # a board that fell back to its 16 MHz HSI: its cycles are not those at 216 MHz
    slow = run_latency(GRAPH, _run("cycles", 16_000_000), tmp_path)
    assert "the board ran at 16 MHz, not 216" in str(slow["latency_ms_basis"])
    qemu = run_latency(GRAPH, _run("instructions", 25_000_000), tmp_path)
    assert str(qemu["latency_ms_basis"]).startswith("estimate at 216 MHz")


def test_a_count_without_a_graph_by_the_stated_model() -> None:
    # a kernel bench's layer: 1,000 instructions reading 64 B of weights (2 flash lines)
    assert count_ms(1000, "instructions", 64) == pytest.approx((0.8 * 1000 + 9 * 2) / 216e3)
    assert count_ms(216_000, "cycles", 64) == 1.0  # measured: the weights are in the count
    assert STATED_BASIS.startswith("estimate at 216 MHz from instructions (Cortex-M7 CPI")
    with pytest.raises(ValueError, match="no milliseconds from counts in 'ticks'"):
        count_ms(1, "ticks", 0)
