"""`tinyformer bench models` on the target: SuperNAS spaces' subnets, dense and block-sparse,
measured bit-exact with their figures; an over-budget model is a row, not a crash; a repeat
replaces its row; an output that differs from the reference is flagged and raises."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tinyformer.engine import reference
from tinyformer.engine.builder import GraphBuilder
from tinyformer.hil.errors import HilError
from tinyformer.nas.bench_models import subnet_bench_models
from tinyformer.perf.latency import SampleStore
from tinyformer.perf.model_bench import GROUPS, HELD_OUT, MODELS, BenchModel, bench_models


def _too_big() -> BenchModel:
    """A 400 KB input: the arena overflows the 320 KB of SRAM at the link."""
    b = GraphBuilder("too_big", np.zeros((400, 1024), np.int8))
    return BenchModel.of("too-big", b.build(b.linear("fc", b.input, 8)))


def test_bench_models_figures(target, tmp_path, monkeypatch) -> None:
    spaces = ["digits-w0.5", "digits-w1"]  # two groups: each is held out, fitted on the other
    models = list(subnet_bench_models("digits", (0.0, 0.9), ("smallest",), spaces))
    table = bench_models(target, [*models, _too_big()], tmp_path)
    assert len(table) == 5
    refused = table[table["model"] == "too-big"].iloc[0]
    assert not refused["fits"] and "overflowed by" in refused["refused"]
    ran = table[table["fits"].astype(bool)].set_index("model")
    assert ran["bit_exact"].astype(bool).all()
    for family in ("digits-w0.5/smallest", "digits-w1/smallest"):
        dense, sparse = ran.loc[f"{family}/s0"], ran.loc[f"{family}/s90"]
        assert dense["macs"] == sparse["macs"] and dense["speedup_vs_dense"] == 1.0
        assert sparse["speedup_vs_dense"] == pytest.approx(dense["count"] / sparse["count"], 1e-3)
        assert sparse["count"] < dense["count"]
    shares = ran[[f"share_{g}" for g in GROUPS]].sum(axis=1)
    assert np.allclose(shares, 1.0, atol=1e-3)
    assert (ran["share_depthwise"] > 0).all() and (ran["share_attention"] > 0).all()
    assert (ran["sram_error_pct"].abs() < 2).all()
    assert (ran["amdahl_bound"] > ran["speedup_vs_dense"]).all()
    assert (tmp_path / "models.png").stat().st_size > 0
    # every layer of every run joined the latency samples; the held-out check covered all
    samples = SampleStore(tmp_path).load()
    assert set(samples["model_id"]) == set(ran.index)
    assert len(samples) == ran["layers"].sum()
    held = pd.read_csv(tmp_path / HELD_OUT)
    assert set(held["model"]) == set(ran.index) and (held["unpredicted"] == 0).all()

    # a repeat replaces its row; an output unlike the reference's is flagged and raises
    def wrong(graph, x):
        return reference.run(graph, x)[graph.outputs[0]] + 1

    monkeypatch.setattr(reference, "outputs", wrong)
    with pytest.raises(HilError, match=r"digits-w0\.5/smallest/s0"):
        bench_models(target, models[:1], tmp_path)
    stored = pd.read_csv(tmp_path / MODELS)
    assert len(stored) == 5
    assert not stored.set_index("model").loc["digits-w0.5/smallest/s0", "bit_exact"]
