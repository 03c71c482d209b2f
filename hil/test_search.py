"""SparseNAS end to end on the target, with a cheap stand-in fitness.

The fitness here is a deterministic function of the candidate (training a supernet is the
pipeline's job, tested in tests/); everything else is real: candidate graphs, exact compiles,
QEMU measurements feeding the latency model, checkpoints and resume.
"""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from driver import CountedFitness, settings

from tinyformer.nas.search import SearchState, SearchStateError, SparseNAS


def test_search_checkpoints_resumes_and_reports(target, tmp_path, capsys) -> None:
    fit = CountedFitness(tmp_path / "calls.txt")
    out, results = tmp_path / "search", tmp_path / "results"
    first = SparseNAS(settings(1), fit, target, out, results, log=print).run()
    calls = fit.calls()
    assert len(calls) == 4 and len(first.evaluated) == 4
    measured = [e for e in first.evaluated.values() if e.measured is not None]
    assert len(measured) == 4 and all(e.measured > 0 for e in measured)
    # A second run on the same folder without --resume refuses to overwrite it.
    with pytest.raises(SearchStateError, match="--resume"):
        SparseNAS(settings(1), fit, target, out, results).run()
    # Other settings cannot resume this checkpoint.
    with pytest.raises(SearchStateError, match="other settings"):
        SparseNAS(settings(3), fit, target, out, results).run(resume=True)
    # The same settings with one more generation: stored evaluations are not repeated.
    state = json.loads((out / "search_state.json").read_text())
    state["settings"]["generations"] = 2
    (out / "search_state.json").write_text(json.dumps(state))
    second = SparseNAS(settings(2), fit, target, out, results).run(True)
    again = fit.calls()[len(calls) :]
    assert again and not set(again) & set(calls)
    assert len(second.evaluated) == 4 + len(again)
    table = pd.read_csv(out / "candidates.csv")
    assert len(table) == len(second.evaluated) and table["pareto"].any()
    # each latency in ms at 216 MHz beside its count (the stated model: no board samples)
    with_latency = table.dropna(subset=["measured"])
    assert (with_latency["latency_ms"] >= (with_latency["measured"] * 0.8 / 216e3).round(3)).all()
    no_latency = table["measured"].isna() & table["predicted"].isna()
    assert (table["latency_ms"].isna() == no_latency).all()
    said = capsys.readouterr().out
    assert re.search(r"generation 1: .* \d+\.\d\d % acc, [\d,]+ \w+ \(\d+\.\d{3} ms\)", said), said
    assert (out / "pareto.png").stat().st_size > 0
    assert (out / "chosen" / "fw" / "build" / "firmware.elf").exists()
    chosen = json.loads((out / "chosen" / "candidate.json").read_text())
    assert chosen["measured"] > 0
    # Candidates measured once the model covered them were first predicted unseen.
    # (the first generation had no model yet). QEMU counts are deterministic, so the MAPE
    # is a regression check of the latency model on real search candidates.
    check = pd.read_csv(out / "latency_check.csv")
    assert len(check) >= 1 and (check["generation"] >= 1).all()
    assert check["mape_pct"].iloc[0] < 5.0
    # Samples of every measured candidate were kept for the latency model.
    samples = pd.read_csv(results / "latency_samples.csv")
    assert samples["model_id"].nunique() == sum(
        e.measured is not None for e in second.evaluated.values()
    )


def test_damaged_checkpoint_is_a_clear_error(tmp_path) -> None:
    path = tmp_path / "search_state.json"
    path.write_text('{"version": 1, "settings": ')
    with pytest.raises(SearchStateError, match="damaged"):
        SearchState.load(path)
    path.write_text('{"version": 99}')
    with pytest.raises(SearchStateError, match="version 99"):
        SearchState.load(path)
