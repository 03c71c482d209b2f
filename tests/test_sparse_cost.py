"""The cost model's storage choice (its coefficients are checked against fresh QEMU counts
in hil/test_sparse_cost_model_on_qemu.py)."""

import numpy as np

from tinyformer.engine.sparse_cost import choose_storage
from tinyformer.engine.sparse_format import BLOCKS, prune_blocks


def test_cost_model_picks_dense_for_dense_and_sparse_for_sparse() -> None:
    rng = np.random.default_rng(0)
    w = rng.integers(-128, 128, (192, 96), dtype=np.int8)
    w[w == 0] = 1
    dense = choose_storage(w, tokens=64)
    assert dense.key == "dense" and dense.block == 0 and dense.encoding is None
    sparse = choose_storage(prune_blocks(w, 4, 0.9), tokens=64)
    assert sparse.encoding == "block-rle" and sparse.block in BLOCKS
    assert sparse.bytes < dense.bytes and sparse.instructions < sparse.dense_instructions
    assert sparse.speedup > 4
    # 90 % sparse in 4-blocks: B = 4 (or coarser pruned-as-4 can't be sparser) wins
    assert sparse.key == ("block-rle", 4)
    # element-wise sparse, no block structure: B = 1 is the only sparse option that pays
    e = w.copy()
    e[rng.random(e.shape) < 0.95] = 0
    assert choose_storage(e, tokens=64).key == ("block-rle", 1)


def test_cost_model_refuses_sparse_that_is_bigger() -> None:
    w = np.ones((16, 64), np.int8)
    w = prune_blocks(w, 1, 0.4)  # 60 % dense, B = 1: 2 bytes per stored weight
    choice = choose_storage(w, tokens=16, blocks=(1,))
    assert choice.key == "dense"
    assert choice.candidates[1][0] > choice.dense_bytes
