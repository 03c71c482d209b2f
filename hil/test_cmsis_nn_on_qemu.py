"""The kernel bench's CMSIS-NN constants, measured again from a CMSIS-NN checkout. CMSIS-NN is
not a dependency and is never downloaded: name a checkout in TINYFORMER_CMSIS_NN to run it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tinyformer.perf.cmsis_nn import bench_cmsis_nn


def test_cmsis_nn_counts_match_the_constants(target, tmp_path: Path) -> None:
    root = os.environ.get("TINYFORMER_CMSIS_NN")
    if not root:
        pytest.skip("TINYFORMER_CMSIS_NN names no CMSIS-NN checkout")
    if target.name != "qemu":
        pytest.skip("the constants are QEMU instruction counts")
    table = bench_cmsis_nn(target, Path(root), tmp_path)
    assert len(table) == 2
    assert (table["vs_constant_pct"].abs() < 1.0).all(), table.to_string()
