"""A search candidate's IR graph: subnet config + sparsity plan -> the exporter's graph.

Budgets and latency depend on the shapes, the sparsity pattern sizes and the storage the
engine picks, not on the trained values, so the search lowers each candidate through the
path a trained model takes: ``Subnet.from_config`` with seeded random weights, block-pruned
to the plan (``tinyformer.prune``), folded and quantized (``QuantSubnet``), exported
(``quant.export.to_graph``) and stored by the engine's cost model. The candidate graph cannot
drift from the deployed one: they are one code path.

Layer names are the ``Subnet`` module paths (``stem.conv``, ``stages.0.blocks.1.expand.conv``,
``stages.1.blocks.0.attn.q``, ``classifier``), the keys of a sparsity plan.
"""

from __future__ import annotations

import torch

from tinyformer.engine.ir import Graph
from tinyformer.engine.storage import encode_weights
from tinyformer.model.config import SubnetConfig, SupernetSpace
from tinyformer.model.subnet import Subnet
from tinyformer.prune.blocks import engine_rows
from tinyformer.prune.masks import prune
from tinyformer.prune.plan import SparsityPlan
from tinyformer.prune.prunable import prunable_modules
from tinyformer.quant.export import to_graph
from tinyformer.quant.qmodules import QuantSubnet

Plan = dict[str, tuple[int, float]]  # layer -> (block size, block sparsity)
# Sizes and latency do not depend on activation ranges: one nominal range for every observed
# point instead of a calibration pass (4x the lowering's time, and one random image can
# collapse a range until LayerNorm's eps no longer fits the kernel).
NOMINAL_RANGE = torch.tensor([-4.0, 4.0], dtype=torch.float64)


def prunable_layers(config: SubnetConfig) -> dict[str, tuple[int, int]]:
    """Every weight matrix the engine can store block-sparse: name -> (rows, row length)."""
    with torch.device("meta"):  # shapes only: no memory, no random init
        subnet = Subnet.from_config(config)
    return {
        name: tuple(engine_rows(m.weight).shape) for name, m in prunable_modules(subnet).items()
    }


def config_graph(config: SubnetConfig, plan: Plan | None = None, seed: int = 0) -> Graph:
    """The candidate's graph, weights stored dense or block-sparse by the engine's cost model."""
    # Layers the plan leaves dense stay unmasked, as in a trained model's plan.
    sparsity = SparsityPlan({k: v for k, v in (plan or {}).items() if v[1] > 0})
    with torch.random.fork_rng(devices=[]):  # the caller's RNG stays put
        torch.manual_seed(seed)
        subnet = Subnet.from_config(config).eval()
    prune(subnet, sparsity)
    model = QuantSubnet.from_subnet(subnet, sparsity)
    for point in model.act_quants():
        if point.fixed is None:
            point.observe(NOMINAL_RANGE)
    model.freeze()
    return encode_weights(to_graph(model.eval(), "candidate"))


def space_graph(dataset: str, sparsity: float = 0.0, block: int = 4, seed: int = 0) -> Graph:
    """The largest subnet of ``dataset``'s default space with random weights, every prunable
    layer at ``sparsity`` in ``block``-row blocks: a model of that scale for benchmarks."""
    config = SupernetSpace.for_dataset(dataset).largest()
    plan = {name: (block, sparsity) for name in prunable_layers(config)} if sparsity else None
    return config_graph(config, plan, seed)
