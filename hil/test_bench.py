"""`tinyformer bench kernels`' dense suite on the target: every layer of the CMSIS-NN
table is measured, checked bit for bit against the reference, and lands in the table."""

from __future__ import annotations

import pandas as pd
import pytest

from tinyformer.perf.calibrate import LATENCY_REPORT, check_latency_model
from tinyformer.perf.kernel_bench import COLUMNS, bench_kernels
from tinyformer.perf.link_bench import bench_link
from tinyformer.perf.milliseconds import count_ms


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
    # ms at 216 MHz beside each count: a board's cycles / 216 MHz, else the stated CPI model
    # (0.8 per instruction plus the weights' flash lines)
    expected = [round(count_ms(c, u, b), 4) for c, u, b in
                zip(table["count"], table["unit"], table["weight_bytes"], strict=True)]  # fmt: skip
    assert table["ms"].tolist() == expected and (table["ms"] > 0).all()
    if target.name == "qemu":
        assert (table["ms"] >= (table["count"] * 0.8 / 216e3).round(4)).all()


def test_latency_bench_predicts_in_counts_and_ms(target, tmp_path) -> None:
    table = check_latency_model(target, tmp_path, n_fit=2, n_test=1)
    row = table.iloc[0]
    assert row["measured_ms"] > 0 and row["predicted_ms"] > 0
    # the same cycle model turns both counts into ms: their ratio is the counts' (flash aside)
    ratio = row["predicted_ms"] / row["measured_ms"]
    assert abs(ratio - row["predicted"] / row["measured"]) < 0.05
    unit = "cycles" if target.name == "board" else "instructions"
    assert row["unit"] == unit and str(row["ms_basis"]).startswith(("estimate", "measured"))
    assert {"measured_ms", "predicted_ms"} <= set(pd.read_csv(tmp_path / LATENCY_REPORT).columns)


@pytest.mark.qemu_only("the link bench damages QEMU's socket")
def test_link_bench_records_every_rate_and_accepts_nothing_wrong(target, tmp_path) -> None:
    out = tmp_path / "link.csv"
    bench_link(target, out, inferences=3, rates=(0.0, 3e-3))
    table = pd.read_csv(out)
    assert list(table["direction"]) == ["both", "to-device", "to-host", "both"]
    assert (table["tried"] == 3).all() and (table["wrong_accepted"] == 0).all()
    assert (table["correct"] + table["clean_errors"] == 3).all()
    assert table["damaged_to_device"].iloc[0] == 0 and table["damaged_to_device"].iloc[1] > 0
