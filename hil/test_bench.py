"""`tinyformer bench kernels`' dense suite on the target: every layer of the CMSIS-NN
table is measured, checked bit for bit against the reference, and lands in the table."""

from __future__ import annotations

import pandas as pd
import pytest

from tinyformer.perf.kernel_bench import COLUMNS, bench_kernels
from tinyformer.perf.link_bench import bench_link


def test_dense_suite_covers_the_cmsis_nn_table(target, tmp_path) -> None:
    out = tmp_path / "kernels.csv"
    table = bench_kernels(target, out, sparse=False)  # raises if an output is not bit-exact
    assert list(pd.read_csv(out).columns[: len(COLUMNS)]) == COLUMNS
    ops = set(zip(table["op"], table["shape"], strict=True))
    assert {
        ("linear", "64x96x192"), ("linear", "1x256x64"), ("linear", "64x384x96"),
        ("depthwise3x3", "16x16x64k3"), ("matmul_qk", "4x64x24x64"), ("matmul_av", "4x64x64x24"),
    } == ops  # fmt: skip
    assert (table["count"] > 0).all()
    baseline = table.dropna(subset=["cmsis_nn_count"])
    assert set(baseline["op"]) == {"linear", "depthwise3x3", "matmul_qk"}
    assert (baseline["speedup_vs_cmsis_nn"] > 0).all()
    dw = table[table["op"] == "depthwise3x3"].iloc[0]
    assert dw["macs"] == 16 * 16 * 64 * 9 and dw["weight_bytes"] == 9 * 64


@pytest.mark.qemu_only("the link bench damages QEMU's socket")
def test_link_bench_records_every_rate_and_accepts_nothing_wrong(target, tmp_path) -> None:
    out = tmp_path / "link.csv"
    bench_link(target, out, inferences=3, rates=(0.0, 3e-3))
    table = pd.read_csv(out)
    assert list(table["direction"]) == ["both", "to-device", "to-host", "both"]
    assert (table["tried"] == 3).all() and (table["wrong_accepted"] == 0).all()
    assert (table["correct"] + table["clean_errors"] == 3).all()
    assert table["damaged_to_device"].iloc[0] == 0 and table["damaged_to_device"].iloc[1] > 0
