"""The latency check of `bench models`: each group held out is predicted by a fit on the
other samples only (its own measurements never answer it), current firmware only."""

from __future__ import annotations

import pandas as pd
import pytest

from tinyformer.compiler.source_hash import firmware_id
from tinyformer.perf.calibrate import check_held_out
from tinyformer.perf.latency import features_json


def _row(model: str, macs: float, count: float, op: str = "linear/dense", fw: str = "") -> dict:
    return {
        "target": "qemu", "unit": "instructions", "op": op,
        "features": features_json({"one": 1.0, "macs": macs}), "count": count,
        "model_id": model, "firmware": fw or firmware_id(), "time": "t",
    }  # fmt: skip


def test_held_out_groups_are_predicted_from_the_others_only() -> None:
    law = lambda macs: 500 + 2 * macs  # noqa: E731
    rows = [_row(f"a{i}", m, law(m)) for i, m in enumerate((1e3, 4e3, 9e3, 2e4))]
    # adds off any one line: a measured signature answers exactly, the fit does not
    rows += [_row("a0", m, c, "add") for m, c in ((10, 100), (20, 100), (30, 400))]
    # b: an add measured in group a, a linear of its own at 3x the law (were b's own samples
    # used, it would be predicted exactly) and an op kind no other model has
    rows += [_row("b", 30, 400, "add"), _row("b", 5e4, 3 * law(5e4)), _row("b", 10, 77, "softmax")]
    rows.append(_row("a1", 5e4, 3 * law(5e4), fw="stale"))  # another firmware: ignored
    totals = {"a0": 1, "a1": 1, "a2": 1, "a3": 1, "b": 400 + 3 * law(5e4) + 77}
    groups = {"a0": "a", "a1": "a", "a2": "a", "a3": "a", "b": "b"}
    table = check_held_out(pd.DataFrame(rows), totals, groups, "qemu", "instructions")
    b = table.set_index("model").loc["b"]
    assert b["unpredicted"] == 1 and b["layers"] == 3
    assert b["predicted"] == pytest.approx(400 + law(5e4), rel=1e-3)
    assert b["predicted_fit"] != b["predicted"]
    assert b["predicted_fit"] == pytest.approx(400 + law(5e4), rel=0.01)
    assert b["error_pct"] < -50
    assert (table["firmware"] == firmware_id()).all() and table["mape_pct"].nunique() == 1
