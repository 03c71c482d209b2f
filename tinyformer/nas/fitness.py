"""SparseNAS fitness: validation accuracy of an inherited-weight subnet after block pruning.

The subnet's weights come from the trained supernet (BatchNorm recalibrated for its
config), the plan's blocks of smallest L2 norm are zeroed, and the pruned subnet is scored
on the validation split, without fine-tuning: a cheap, consistent ranking signal.
"""

from __future__ import annotations

from pathlib import Path

import torch

from tinyformer.data import DatasetSplits
from tinyformer.model import Supernet, calibrated_subnet, evaluate
from tinyformer.nas.genome import Candidate
from tinyformer.prune import SparsityPlan, prune


class SupernetFitness:
    def __init__(self, supernet: Supernet, data: DatasetSplits, calib_batches: int = 4) -> None:
        self.supernet = supernet.eval()
        self.data = data
        self.calib_batches = calib_batches

    @classmethod
    def from_checkpoint(cls, path: Path, data: DatasetSplits) -> SupernetFitness:
        from tinyformer.model import load_supernet

        return cls(load_supernet(path), data)

    def __call__(self, cand: Candidate) -> float:
        with torch.no_grad():
            subnet = calibrated_subnet(self.supernet, cand.config, self.data, self.calib_batches)
        planned = {layer: [block, s] for layer, block, s in cand.plan if s > 0}
        if planned:
            prune(subnet, SparsityPlan.from_dict(planned))
        return round(evaluate(subnet, self.data.val), 5)
