"""`tinyformer bench sparse-cost`: the engine's cost model fitted on fresh QEMU counts.

The dense and block-sparse FC and conv kernels are run over a grid of shapes (``GRID``) by
the kernel bench's sparse suite (one firmware per shape, every call proven bit-exact by its
checksum, :func:`~tinyformer.perf.kernel_bench.run_sparse_problem`). The calls go to
``results/sparse_cost_calls.csv`` (written before fitting, so a failed fit loses no
measurement); the coefficients of :mod:`tinyformer.engine.sparse_cost`'s terms are fitted by
non-negative least squares on the relative error, the dense kernels' and the sparse kernels'
apart, and written to the package's ``engine/fitted/sparse_cost.json`` with the kernel-source
key, the date and each kernel's error.

The grid covers every term: every B at every sparsity on linears with 1 token, under one
8-token tile (no row table) and with leftover tokens, on 3x3 convs with Cin % 4 == 0 and
not, and 1x1 convs; dense tile tails n = 1..13 (every mix of 6-, 4-, 2- and 1-tiles).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from tinyformer.atomic_write import write_atomic_text
from tinyformer.compiler.firmware import build_id
from tinyformer.engine.kernel_headers import kernel_sources_key
from tinyformer.engine.sparse_cost import (
    DENSE_KERNELS,
    DENSE_TERMS,
    FITTED,
    SPARSE_KERNELS,
    SPARSE_TERMS,
    CostFit,
    KernelError,
    dense_terms,
    predict,
    shipped_fit,
    sparse_terms,
)
from tinyformer.engine.sparse_format import block_stats, prune_blocks
from tinyformer.hil.targets.base import Target
from tinyformer.perf.kernel_bench import (
    SPARSE_BLOCKS,
    SPARSE_PROBLEMS,
    SPARSITIES,
    SparseProblem,
    problem_data,
    run_sparse_problem,
)
from tinyformer.results import now_iso, write_atomic

CALLS = "sparse_cost_calls.csv"
FEW = (0.5, 0.9)  # sparsities of the shapes that are there for their token counts


def _linear(tokens: int, k: int, m: int) -> SparseProblem:
    return SparseProblem("linear", tokens, 1, k, m)


# (problem, sparsities): every block size at each sparsity, plus the dense kernel.
GRID: list[tuple[SparseProblem, tuple[float, ...]]] = [
    *((p, SPARSITIES) for p in SPARSE_PROBLEMS),
    *((_linear(*s), SPARSITIES) for s in ((5, 256, 64), (8, 256, 64), (13, 96, 192),
                                          (64, 384, 96), (3, 96, 48), (21, 40, 30))),
    (SparseProblem("conv", 12, 12, 30, 24, k=3), SPARSITIES),  # Cin % 4 != 0: gathered
    (SparseProblem("conv", 10, 10, 16, 24, k=3), SPARSITIES),
    *((_linear(n, 96, 192), FEW) for n in (2, 4, 6, 7, 9, 10, 11, 12)),  # the other tails
    *((_linear(*s), FEW) for s in ((64, 32, 64), (16, 64, 128), (11, 48, 40), (10, 128, 32),
                                   (256, 32, 64))),
]  # fmt: skip

CALL_COLUMNS = [
    "kernel", "op", "shape", "tokens", "k", "m", "block", "sparsity", "entries", "empty_rows",
    "im2col", "channels_aligned", "count", "unit", "source", "target", "kernel_sources",
    "git_rev", "time",
]  # fmt: skip


def grid_calls(problem: SparseProblem, sparsities: tuple[float, ...]) -> list[dict]:
    """What the cost model needs of each call of the problem's firmware, in its layer order
    (dense, then B x s): the shape as the model sees it and the pruned weights' statistics."""
    oh, ow = problem.out_hw
    im2col = problem.op == "conv" and problem.k > 1
    base = problem_data(problem).base
    shape = {
        "op": problem.name, "shape": problem.shape, "tokens": oh * ow, "k": problem.depth,
        "m": problem.cout, "im2col": im2col, "channels_aligned": problem.cin % 4 == 0,
    }  # fmt: skip
    calls = [{**shape, "block": 0, "sparsity": 0.0, "entries": 0, "empty_rows": 0}]
    for block in SPARSE_BLOCKS:
        for s in sparsities:
            st = block_stats(prune_blocks(base, block, s), block)
            calls.append({**shape, "block": block, "sparsity": s, "entries": st.entries,
                          "empty_rows": st.empty_rows})  # fmt: skip
    return calls


def measure_calls(target: Target, progress: Callable[[str], None] = print) -> pd.DataFrame:
    """Every call of ``GRID`` counted on ``target``, one row each (columns: CALL_COLUMNS)."""
    rows = []
    key, rev = kernel_sources_key(), build_id()
    for i, (problem, sparsities) in enumerate(GRID, 1):
        with tempfile.TemporaryDirectory() as tmp:
            run = run_sparse_problem(target, problem, Path(tmp), sparsities=sparsities)
        for call, r in zip(grid_calls(problem, sparsities), run, strict=True):
            assert (call["block"], call["sparsity"]) == (r["block"], r["sparsity"])
            rows.append({**call, "kernel": r["kernel"], "count": r["count"], "unit": r["unit"],
                         "source": r["source"], "target": target.name, "kernel_sources": key,
                         "git_rev": rev, "time": now_iso()})  # fmt: skip
        progress(f"[{i}/{len(GRID)}] {problem.name} {problem.shape}: {len(run)} calls")
    return pd.DataFrame(rows, columns=CALL_COLUMNS)


def call_terms(call: pd.Series) -> dict[str, float]:
    """The cost model's terms of one call (a row of the calls table)."""
    tokens, k, m = int(call["tokens"]), int(call["k"]), int(call["m"])
    im2col, block = bool(call["im2col"]), int(call["block"])
    if block == 0:
        return dense_terms(tokens, k, m, im2col)
    entries, empty, aligned = (
        int(call["entries"]),
        int(call["empty_rows"]),
        bool(call["channels_aligned"]),
    )
    return sparse_terms(tokens, k, m, block, entries, empty, im2col, aligned)


def _fit(terms: list[dict[str, float]], counts: np.ndarray, names: tuple[str, ...]) -> dict:
    """NNLS on the relative error: minimise sum((predicted - count) / count)^2, coefficients
    >= 0; columns scaled to unit norm for the solver, rounded to 4 decimals after."""
    a = np.array([[t[n] for n in names] for t in terms]) / counts[:, None]
    norms = np.linalg.norm(a, axis=0)
    missing = [n for n, v in zip(names, norms, strict=True) if v == 0]
    if missing:
        raise ValueError(f"the calls do not cover the cost model's terms {missing}")
    x, _ = nnls(a / norms, np.ones(len(counts)), maxiter=50 * len(names))
    return {n: round(float(v), 4) for n, v in zip(names, x / norms, strict=True)}


def fit_calls(calls: pd.DataFrame) -> CostFit:
    """The cost model's coefficients fitted on ``calls`` (a calls table, one target's counts
    of the same kernel sources), with each kernel's error on them."""
    if calls.empty:
        raise ValueError("no kernel calls to fit on")
    for column in ("unit", "kernel_sources"):
        if calls[column].nunique() != 1:
            raise ValueError(f"the calls mix {column}s: {sorted(calls[column].unique())}")
    if calls["unit"].iloc[0] != "instructions":
        raise ValueError(
            "the cost model predicts instructions (QEMU), not " + calls["unit"].iloc[0]
        )
    terms = [call_terms(row) for _, row in calls.iterrows()]
    counts = calls["count"].to_numpy(float)
    dense = (calls["block"] == 0).to_numpy()
    coefs = {
        "dense": _fit([t for t, d in zip(terms, dense, strict=True) if d], counts[dense],
                      DENSE_TERMS),
        "sparse": _fit([t for t, d in zip(terms, dense, strict=True) if not d], counts[~dense],
                       SPARSE_TERMS),
    }  # fmt: skip
    predicted = np.array([
        predict(coefs["dense" if d else "sparse"], t) for t, d in zip(terms, dense, strict=True)
    ])  # fmt: skip
    off = np.abs(predicted - counts) / counts * 100
    error = {}
    for kernel in (*DENSE_KERNELS, *SPARSE_KERNELS):
        mine = (calls["kernel"] == kernel).to_numpy()
        if not mine.any():
            raise ValueError(f"no calls of {kernel} to fit on")
        error[kernel] = KernelError(
            int(mine.sum()), round(float(off[mine].mean()), 3), round(float(off[mine].max()), 3)
        )
    return CostFit(
        kernel_sources=str(calls["kernel_sources"].iloc[0]),
        date=str(calls["time"].max()),
        calls=len(calls),
        dense=coefs["dense"],
        sparse=coefs["sparse"],
        error=error,
    )


def bench_sparse_cost(
    target: Target,
    results: Path,
    fitted: Path = FITTED,
    progress: Callable[[str], None] = print,
) -> CostFit:
    """Measure ``GRID`` on ``target`` (QEMU), write the calls to ``results/CALLS`` and the fit
    to ``fitted`` (the package's, which the engine reads)."""
    if target.name != "qemu":
        raise ValueError(
            f"bench sparse-cost fits QEMU's instruction counts, which the engine's cost model "
            f"predicts: use --target qemu (not {target.name})"
        )
    calls = measure_calls(target, progress)
    write_atomic(calls, results / CALLS)
    fit = fit_calls(calls)
    fitted.parent.mkdir(parents=True, exist_ok=True)
    write_atomic_text(fit.to_json(), fitted)
    shipped_fit.cache_clear()  # this process predicts with the new fit from now on
    return fit
