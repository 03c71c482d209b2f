"""Memory planner: no two live buffers overlap, in-place sharing, bound and ratio."""

from __future__ import annotations

import numpy as np
import pytest

from tinyformer.engine.planner import Step, plan_memory


def assert_no_live_overlap(plan) -> None:
    bufs = plan.buffers
    for i, a in enumerate(bufs):
        assert a.offset >= 0 and a.offset % 8 == 0
        for b in bufs[i + 1 :]:
            if a.first <= b.last and b.first <= a.last:
                assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, (a, b)


def chain(sizes: list[int], inplace_every: int = 0, scratch: int = 0):
    steps, tensor_sizes = [], {"t0": sizes[0]}
    for i, s in enumerate(sizes[1:], 1):
        tensor_sizes[f"t{i}"] = s
        inplace = 0 if inplace_every and i % inplace_every == 0 else None
        steps.append(Step(f"op{i}", (f"t{i - 1}",), (f"t{i}",), scratch, inplace))
    return steps, tensor_sizes


def test_chain_is_optimal() -> None:
    steps, sizes = chain([4096, 8192, 2048, 8192, 1024])
    plan = plan_memory(steps, sizes, ["t0"], ["t4"])
    assert_no_live_overlap(plan)
    assert plan.lower_bound == 4096 + 8192  # op1 reads t0 while writing t1
    assert plan.arena_bytes == plan.lower_bound


def test_inplace_shares_the_input_buffer() -> None:
    steps, sizes = chain([1001, 1001, 1001], inplace_every=2)
    plan = plan_memory(steps, sizes, ["t0"], ["t2"])
    assert plan.offsets["t1"] == plan.offsets["t2"]
    assert plan.arena_bytes == 2 * 1008  # two buffers, each 8-byte aligned


def test_inplace_refused_when_input_still_needed() -> None:
    steps = [
        Step("a", ("x",), ("y",), inplace=0),
        Step("b", ("x", "y"), ("z",)),  # x is read after a: a must not overwrite it
    ]
    plan = plan_memory(steps, {"x": 64, "y": 64, "z": 64}, ["x"], ["z"])
    assert plan.offsets["x"] != plan.offsets["y"]
    assert_no_live_overlap(plan)


def test_residual_block_keeps_skip_alive() -> None:
    steps = [
        Step("conv1", ("x",), ("h1",), scratch_bytes=300),
        Step("conv2", ("h1",), ("h2",), scratch_bytes=300),
        Step("add", ("x", "h2"), ("y",), inplace=1),
    ]
    plan = plan_memory(steps, {"x": 1024, "h1": 2048, "h2": 1024, "y": 1024}, ["x"], ["y"])
    assert_no_live_overlap(plan)
    assert plan.offsets["y"] == plan.offsets["h2"]
    assert plan.ratio <= 1.05


@pytest.mark.parametrize("seed", range(25))
def test_random_graphs_are_valid_and_near_the_bound(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 30))
    sizes = {"t0": int(rng.integers(1, 5000))}
    steps = []
    for i in range(1, n):
        srcs = {f"t{i - 1}"}
        if i > 2 and rng.random() < 0.3:
            srcs.add(f"t{int(rng.integers(0, i - 1))}")  # a skip connection
        sizes[f"t{i}"] = int(rng.integers(1, 5000))
        steps.append(
            Step(f"op{i}", tuple(sorted(srcs)), (f"t{i}",), int(rng.integers(0, 600)),
                 0 if rng.random() < 0.3 else None)
        )  # fmt: skip
    plan = plan_memory(steps, sizes, ["t0"], [f"t{n - 1}"])
    assert_no_live_overlap(plan)
    assert plan.arena_bytes >= plan.lower_bound
    assert plan.ratio < 1.6


def test_reading_an_unknown_tensor_is_an_error() -> None:
    with pytest.raises(ValueError, match="reads 'ghost'"):
        plan_memory([Step("a", ("ghost",), ("y",))], {"y": 4}, [], ["y"])


def test_plot_writes_png(tmp_path) -> None:
    steps, sizes = chain([100, 200, 300])
    path = plan_memory(steps, sizes, ["t0"], ["t2"]).plot(tmp_path / "plan.png")
    assert path.stat().st_size > 1000
