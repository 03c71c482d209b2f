"""`tinyformer bench train`'s mechanics on the smallest case (its figures come from the bench
itself, into results/training.csv): rows per step kind, keyed so a rerun replaces them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from tinyformer.model.train_bench import COLUMNS, bench_training


def test_bench_rows_are_keyed_and_replaced(tmp_path: Path) -> None:
    out = tmp_path / "training.csv"
    before = torch.get_num_threads()
    try:
        first = bench_training(out, "cpu", [1], ["digits"], batch_size=16, steps=1, warmup=0)
        bench_training(out, "cpu", [1], ["digits"], batch_size=16, steps=1, warmup=0)
    finally:
        torch.set_num_threads(before)
    assert list(first.columns) == COLUMNS
    assert sorted(first["step"]) == ["subnet", "supernet"]
    assert (first["input"] == "8x8x1").all() and (first["threads"] == 1).all()
    assert (first["images_per_s"] > 0).all() and (first["device"] == "cpu").all()
    table = pd.read_csv(out)
    assert len(table) == 2, table  # the rerun replaced the first run's rows
    assert (first["parameters"] > 0).all() and (first["host_load"] >= 0).all()
