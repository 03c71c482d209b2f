"""The default spaces' docstrings and SuperNAS's budget estimates state the truth: the figures
are recomputed here (parameters counted, constants emitted, firmware compiled and linked)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from tinyformer.boards import FLASH_BUDGET
from tinyformer.compiler.driver import compile_model
from tinyformer.compiler.errors import DoesNotFitError
from tinyformer.engine import ir
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.model.config import DEFAULT_SPACES, SubnetConfig, SupernetSpace
from tinyformer.model.subnet import Subnet
from tinyformer.nas.candidate import config_graph, prunable_layers
from tinyformer.nas.supernas import estimate_budget
from tinyformer.prune import DEFAULT_SKIP

KB = 1024


def _params(config: SubnetConfig) -> int:
    with torch.device("meta"):
        return Subnet.from_config(config).num_parameters()


def _claim(doc: str, pattern: str) -> float:
    found = re.search(pattern, " ".join(doc.split()))
    assert found, f"the docstring no longer says {pattern!r}"
    return float(found.group(1).replace(",", ""))


def test_digits_space_docstring() -> None:
    doc = DEFAULT_SPACES["digits"].__doc__ or ""
    space = SupernetSpace.for_dataset("digits")
    assert round(_params(space.largest()) / 1000) == _claim(doc, r"Largest subnet (\d+) k")
    assert round(_params(space.smallest()) / 1000) == _claim(doc, r"smallest (\d+) k")


def test_cifar10_space_docstring_and_supernas_estimates(tmp_path: Path) -> None:
    doc = DEFAULT_SPACES["cifar10"].__doc__ or ""
    space = SupernetSpace.for_dataset("cifar10")
    largest, smallest = space.largest(), space.smallest()
    assert round(_params(largest) / 1e6, 2) == _claim(doc, r"Largest subnet ([\d.]+) M param")
    assert round(_params(smallest) / 1e6, 2) == _claim(doc, r"Smallest subnet ([\d.]+) M param")

    dense = config_graph(largest)
    plan = plan_graph(dense)
    constants = sum(int(c.values.nbytes) for c in generate(dense, plan).constants)
    assert round(constants / KB) == _claim(doc, r"weights and tables alone are ([\d,]+) KB")
    # "does not fit": refused before the build (so the linker would refuse it too), and
    # SuperNAS's estimate says so
    assert "dense it does not fit 1 MB" in " ".join(doc.split())
    with pytest.raises(DoesNotFitError, match=r"FLASH \(1024 KB\) overflowed by at least"):
        compile_model(ir.save(dense, tmp_path / "d.tfir"), tmp_path / "d")
    flash_est, _ = estimate_budget(dense)
    assert flash_est > FLASH_BUDGET

    pruned_plan = {k: (4, 0.75) for k in prunable_layers(largest) if k not in DEFAULT_SKIP}
    pruned = config_graph(largest, pruned_plan)
    report = compile_model(ir.save(pruned, tmp_path / "p.tfir"), tmp_path / "p")
    # flash includes the firmware's code, which moves with every kernel: "about", within 2 %
    assert report.flash_bytes / KB == pytest.approx(_claim(doc, r"about (\d+) KB of\s+flash"), 0.02)
    assert round(report.predicted_peak_sram_bytes / KB) == _claim(doc, r"(\d+) KB of peak SRAM")
    flash_est, ram_est = estimate_budget(pruned)
    assert report.flash_bytes <= flash_est <= report.flash_bytes + 40_000 < FLASH_BUDGET
    assert report.static_ram_bytes < ram_est <= report.static_ram_bytes + 8192 + 16

    small = config_graph(smallest)
    report = compile_model(ir.save(small, tmp_path / "s.tfir"), tmp_path / "s")
    assert report.flash_bytes / KB == pytest.approx(
        _claim(doc, r"about (\d+) KB of flash dense"), 0.02
    )
