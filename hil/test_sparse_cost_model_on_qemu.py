"""The engine's cost model against fresh QEMU counts: every kernel of the sparse bench (dense
and block-rle at every B and sparsity, on the bench's linear, 3x3 and 1x1 convs and one-token
head), measured now and proven bit-exact by the bench, must be predicted within 3 % by the
shipped fit (engine/fitted/sparse_cost.json, made by `tinyformer bench sparse-cost`)."""

from __future__ import annotations

import pytest

from tinyformer.engine.kernel_headers import kernel_sources_key
from tinyformer.engine.sparse_cost import dense_instructions, shipped_fit, sparse_instructions
from tinyformer.engine.sparse_format import block_stats, prune_blocks
from tinyformer.perf.kernel_bench import (
    SPARSE_PROBLEMS,
    SparseProblem,
    problem_data,
    run_sparse_problem,
)

TOLERANCE = 0.03  # above the fit's worst error on its calls (its "error" per kernel)


def predicted(p: SparseProblem, block: int, sparsity: float) -> float:
    oh, ow = p.out_hw
    im2col = p.op == "conv" and p.k > 1
    if block == 0:
        return dense_instructions(oh * ow, p.depth, p.cout, im2col)
    st = block_stats(prune_blocks(problem_data(p).base, block, sparsity), block)
    aligned = p.cin % 4 == 0
    return sparse_instructions(
        oh * ow, p.depth, p.cout, block, st.entries, st.empty_rows, im2col, aligned
    )


@pytest.mark.qemu_only("the model predicts QEMU's instruction counts, not a board's cycles")
@pytest.mark.parametrize("problem", SPARSE_PROBLEMS, ids=lambda p: f"{p.name}-{p.shape}")
def test_cost_model_predicts_fresh_measurements(target, tmp_path, problem) -> None:
    # a fit of other kernels predicts them, not these: tests/test_sparse_cost_fit.py says so
    assert shipped_fit().kernel_sources == kernel_sources_key(), "refit: bench sparse-cost"
    rows = run_sparse_problem(target, problem, tmp_path)  # raises unless bit-exact
    assert {r["unit"] for r in rows} == {"instructions"}
    off = []
    for r in rows:
        est = predicted(problem, r["block"], r["sparsity"])
        err = (est - r["count"]) / r["count"]
        if abs(err) > TOLERANCE:
            off.append(f"B={r['block']} s={r['sparsity']}: {est:.0f} vs {r['count']} ({err:+.1%})")
    assert not off, "; ".join(off)
