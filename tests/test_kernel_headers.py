"""Numbers C and Python share come from the kernels' headers (engine/kernel_headers.py)."""

from __future__ import annotations

import pytest

from tinyformer.engine import kernel_headers as kh
from tinyformer.engine.ops import linear, sparse
from tinyformer.engine.sparse_cost import TILE as COST_TILE


def test_tiles_are_the_headers() -> None:
    assert (kh.FC_TILE, kh.SPARSE_TILE) == (6, 8)  # what the kernels' assembly is written for
    assert linear.FC_TILE == kh.FC_TILE
    assert sparse.TILE == COST_TILE == kh.SPARSE_TILE


def test_a_missing_define_is_named() -> None:
    with pytest.raises(LookupError, match=r"tf_dsp\.h defines no integer TF_NOT_THERE"):
        kh.header_define("tf_dsp.h", "TF_NOT_THERE")
