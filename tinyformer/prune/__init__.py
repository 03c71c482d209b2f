"""Blockwise pruning: per-layer block size and sparsity, block-L2 magnitude, cubic schedule.

- :mod:`~tinyformer.prune.plan`: ``SparsityPlan`` (layer -> block size, sparsity; JSON);
- :mod:`~tinyformer.prune.blocks`: block masks in the engine's row layout;
- :mod:`~tinyformer.prune.prunable`: which layers can be pruned;
- :mod:`~tinyformer.prune.masks`: masks attached to layers, kept through training and QAT;
- :mod:`~tinyformer.prune.schedule`: Zhu & Gupta's gradual (cubic) schedule.
"""

from tinyformer.prune.blocks import (
    block_mask,
    block_norms,
    block_sparsity,
    engine_rows,
    from_engine_rows,
    mask_from_zeros,
)
from tinyformer.prune.masks import (
    apply_masks,
    attach,
    enforce_masks,
    get_mask,
    masks_from_zeros,
    masks_of,
    overall_sparsity,
    prune,
    remove_mask,
    set_mask,
    sparsity_report,
)
from tinyformer.prune.plan import (
    BLOCKS,
    DEFAULT_SKIP,
    LayerSparsity,
    PlanError,
    SparsityPlan,
)
from tinyformer.prune.prunable import prunable_modules
from tinyformer.prune.schedule import (
    GradualPruner,
    GradualSchedule,
    cubic_fraction,
    cubic_sparsity,
)

__all__ = [
    "BLOCKS",
    "DEFAULT_SKIP",
    "GradualPruner",
    "GradualSchedule",
    "LayerSparsity",
    "PlanError",
    "SparsityPlan",
    "apply_masks",
    "attach",
    "block_mask",
    "block_norms",
    "block_sparsity",
    "cubic_fraction",
    "cubic_sparsity",
    "enforce_masks",
    "engine_rows",
    "from_engine_rows",
    "get_mask",
    "mask_from_zeros",
    "masks_from_zeros",
    "masks_of",
    "overall_sparsity",
    "prunable_modules",
    "prune",
    "remove_mask",
    "set_mask",
    "sparsity_report",
]
