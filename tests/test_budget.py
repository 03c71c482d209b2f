"""Budgets before the build: a model that cannot fit is one line naming the region and the
overflow, and the prediction agrees with the linker at the edge of both budgets (each side is
really built with arm-none-eabi-gcc). hil/test_cifar_scale.py runs a search over such models."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyformer.boards import FLASH_BUDGET, RAM_BUDGET
from tinyformer.compiler.budget import BudgetEstimate, estimate
from tinyformer.compiler.driver import compile_model
from tinyformer.compiler.errors import DoesNotFitError
from tinyformer.compiler.firmware import DEFAULT_STACK, build
from tinyformer.engine import ir
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.demo import demo_graph
from tinyformer.engine.graph import Graph


def _estimate(graph: Graph) -> BudgetEstimate:
    plan = plan_graph(graph)
    return estimate(graph, plan, generate(graph, plan), DEFAULT_STACK)


def _first(make, key, limit: int, lo: int, hi: int) -> int:
    """The smallest size in lo..hi whose graph's ``key`` figure exceeds ``limit``."""
    while lo < hi:
        mid = (lo + hi) // 2
        if key(_estimate(make(mid))) > limit:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _forced_build(graph: Graph, folder: Path) -> str:
    """Build without the prediction's check: the linker's own verdict ('' when it links)."""
    plan = plan_graph(graph)
    generate(graph, plan).write(folder / "fw" / "model")
    try:  # in _compile's folders: the next build there recompiles only the model
        build(folder / "fw" / "model", folder / "fw" / "build")
    except DoesNotFitError as exc:
        return str(exc)
    return ""


def _compile(graph: Graph, folder: Path):
    return compile_model(ir.save(graph, folder / "m.tfir"), folder / "fw")


def test_ram_edge_agrees_with_the_linker(tmp_path: Path) -> None:
    def make(tokens: int) -> Graph:
        return demo_graph(0, tokens=tokens)  # arena: tokens x (96 + 192) bytes

    tokens = _first(make, lambda e: e.ram_region_bytes, RAM_BUDGET, 1, 2000)
    over = _estimate(make(tokens)).ram_region_bytes - RAM_BUDGET
    with pytest.raises(DoesNotFitError) as info:
        _compile(make(tokens), tmp_path / "over")
    message = str(info.value)
    assert f"RAM (320 KB) overflowed by {over:,} bytes" in message, message
    assert "refused before the build" in message and "\n" not in message
    assert not (tmp_path / "over" / "fw" / "build").exists()  # nothing was built
    linker = _forced_build(make(tokens), tmp_path)
    linked_over = int(
        linker.split("RAM (320 KB) overflowed by ")[1].split(" bytes")[0].replace(",", "")
    )
    assert 0 <= linked_over - over < 16, linker  # the prediction is the linker's, to 16 B
    fits = _compile(make(tokens - 1), tmp_path)  # one token less: links
    predicted = _estimate(make(tokens - 1))
    assert 0 <= fits.static_ram_bytes - predicted.static_ram_bytes < 16
    assert RAM_BUDGET - 300 < predicted.ram_region_bytes <= RAM_BUDGET


def test_flash_edge_agrees_with_the_linker(tmp_path: Path) -> None:
    def make(out_features: int) -> Graph:
        return demo_graph(0, tokens=1, in_features=1024, out_features=out_features)

    n = _first(make, lambda e: e.flash_min_bytes, FLASH_BUDGET, 995, 1025)
    over = _estimate(make(n)).flash_min_bytes - FLASH_BUDGET
    with pytest.raises(
        DoesNotFitError, match=rf"FLASH \(1024 KB\) overflowed by at least {over:,} b"
    ):
        _compile(make(n), tmp_path / "over")
    assert 0 < over <= 1100  # within one output row of the edge
    # (the linker refuses it too: it refuses n - 2, which has less to store)
    # Under the bound, the linker decides: a model refused by it says so in one line, with
    # its figures for a search; one that links never was refused by the prediction.
    with pytest.raises(
        DoesNotFitError, match=r"FLASH \(1024 KB\) overflowed by [\d,]+ bytes$"
    ) as info:
        _compile(make(n - 2), tmp_path)
    assert info.value.flash_bytes is not None and info.value.flash_bytes > FLASH_BUDGET
    report = _compile(make(n - 40), tmp_path)
    assert _estimate(make(n - 40)).flash_min_bytes <= report.flash_bytes <= FLASH_BUDGET
