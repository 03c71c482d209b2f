"""The CIFAR-scale models of `tinyformer bench models`: every space SuperNAS can choose for
CIFAR-10, its smallest, median and largest subnet, dense and block-sparse.

Random weights (seeded): instruction counts, memory and bit-exactness do not depend on the
trained values, only on the shapes and the sparsity pattern sizes (accuracy is not claimed).
Every prunable layer but the stem conv and the classifier (the uniform plan's default skips)
is pruned to the same block sparsity, with the uniform plan's block size.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.nas.candidate import Plan, config_graph, prunable_layers
from tinyformer.nas.supernas import candidate_spaces
from tinyformer.perf.model_bench import BenchModel
from tinyformer.prune.plan import DEFAULT_SKIP

SPARSITIES = (0.0, 0.5, 0.75, 0.9)
BLOCK = 4  # SparsityPlan.uniform's default
SIZES = ("smallest", "median", "largest")


def subnet(space: SupernetSpace, size: str) -> SubnetConfig:
    return {"smallest": space.smallest, "median": space.median, "largest": space.largest}[size]()


def uniform_plan(config: SubnetConfig, sparsity: float, block: int = BLOCK) -> Plan | None:
    """{layer: (block, sparsity)} for every prunable layer but the default skips."""
    if sparsity == 0:
        return None
    return {n: (block, sparsity) for n in prunable_layers(config) if n not in DEFAULT_SKIP}


def subnet_bench_models(
    dataset: str = "cifar10",
    sparsities: Sequence[float] = SPARSITIES,
    sizes: Sequence[str] = SIZES,
    spaces: Sequence[str] | None = None,
) -> Iterator[BenchModel]:
    """Each model as it is lowered (one at a time: a graph of the largest takes seconds).

    ``spaces``: names of SuperNAS's candidate spaces to keep (all by default).
    """
    for space in candidate_spaces(SupernetSpace.for_dataset(dataset)):
        if spaces is not None and space.name not in spaces:
            continue
        group = space.name.removesuffix("-deep")
        for size in sizes:
            config = subnet(space, size)
            family = f"{space.name}/{size}"
            for s in sparsities:
                graph = config_graph(config, uniform_plan(config, s))
                # held out with the same widths one stage deeper: they share the smallest
                yield BenchModel(f"{family}/s{round(s * 100)}", graph, family, s, group)
