"""The engine's cost model: instructions of the dense and block-sparse kernels predicted from
a layer's shape and its block-rle statistics, and the storage choice built on it.

Depends on the format only (:mod:`tinyformer.engine.sparse_format`); the coefficients are
checked against fresh QEMU measurements by ``hil/test_sparse_cost_model_on_qemu.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyformer.engine.kernel_headers import SPARSE_TILE
from tinyformer.engine.sparse_format import BLOCKS, ENCODING, as_matrix, block_stats

# Instructions of one kernel call as QEMU counts them (-icount, mps2-an500, GCC 12 -O2), from
# `tinyformer bench kernels` (results/kernels.csv) plus runs of the same bench machinery on
# more shapes; each kernel's fit and its error are given with its constants.
#
# Dense tf_fully_connected_s8 (tiles of 6 tokens, the last 1-5 as in dense_tiles), fitted by
# NNLS on 30 dense linears (n = 1..13 and 64 at 96x192 and 256x64, 64x384x96, 64x32x64,
# 16x64x128, 11x48x40, 10x128x32, 256x32x64): within 1 %. Per tile size T: instructions per
# (row, group of 4 inputs) and per row (requantize, clamp and store T outputs); T = 1 is the
# lone token, run two rows per pass.
DENSE_PER_GROUP_ROW = {6: 18.26, 4: 13.23, 2: 8.19, 1: 4.81}
DENSE_PER_ROW = {6: 42.2, 4: 36.1, 2: 29.6, 1: 18.8}
DENSE_PER_INPUT = 0.874  # sign-extending the tile's inputs
DENSE_PER_TILE = 105.4
DENSE_PER_CALL = 705.0
DENSE_IM2COL_PER_BYTE = 1.20  # tf_conv2d_s8's patch gather (conv3x3 16x16x32->32 minus FC)
# Sparse tf_sparse_fully_connected_s8 / tf_sparse_conv2d_s8: NNLS (relative error) on 312
# kernel calls, every B and s of the bench problems plus linear 5x256x64, 8x256x64,
# 13x96x192, 64x384x96, 3x96x48, 21x40x30 and conv 3x3 12x12x30->24, 10x10x16->24, the
# per-block terms fixed at their hand counts. Model vs measured: within 2.2 % for the linears
# and 1x1 convs (worst: B = 16 at 95 %), 2.6 % for the 3x3 convs. Per stored entry (fillers
# too) and 8-token tile: the assembly block bodies (gap add, weight load + SXTB16,
# 8 x (LDRD + 2 SMLAD) per 4 weights, next gap); per row and tile: SMMLA + SSAT x 8, 8
# strided STRB and the table-driven row changes (32); a row without entries costs 15 after
# the first tile (its output is stored, not computed).
TILE = SPARSE_TILE
SPARSE_PER_BLOCK = {1: 15.0, 2: 19.0, 4: 31.0, 8: 58.0, 16: 112.0}
SPARSE_PER_ROW_TILE = 31.8  # a row with entries, per tile (without its blocks)
SPARSE_PER_EMPTY_ROW_TILE = 15.3  # a row without entries, per tile
SPARSE_PER_INPUT = {1: 1.93, 2: 2.23, 4: 0.82, 8: 0.85, 16: 0.9}  # widening, per activation
SPARSE_PER_TOKEN = 24.5  # per token: tile calls, widening calls
# Leftover tokens (n % 8) run one at a time through the one-token assembly routines.
SPARSE_PER_ROW_TOKEN = 15.7
SPARSE_PER_BLOCK_TOKEN = {1: 7.0, 2: 9.0, 4: 10.0, 8: 16.0, 16: 28.0}
SPARSE_PER_CALL = 497.0  # header check, calls
SPARSE_PER_ROW = 19.2  # the row table and the first tile's look at each row, once per call
SPARSE_PER_ROW_CHECK = 3.3  # fewer than 8 tokens (a linear): no table, the shifts checked
# tf_sparse_conv2d_s8 kxk: per output pixel, plus per patch byte (pixels x kh*kw*Cin) instead
# of the per-input and per-token terms: B >= 4 with Cin % 4 == 0 widens straight from the
# input (0.78); otherwise patches are gathered, then widened (2.9 for B = 1, 3.16 for B = 2,
# 1.95 for B >= 4 with Cin % 4 != 0).
SPARSE_CONV_PER_PIXEL = 242.0
SPARSE_CONV_PER_BYTE = {1: 2.9, 2: 3.16, 4: 0.78, 8: 0.78, 16: 0.78}
SPARSE_CONV_GATHER_PER_BYTE = 1.95


@dataclass(frozen=True)
class StorageChoice:
    """What :func:`choose_storage` picked, with the estimates it compared."""

    encoding: str | None  # None (dense, as Tensor.encoding) or "block-rle"
    block: int  # 0 for dense
    bytes: int
    instructions: float
    dense_bytes: int
    dense_instructions: float
    candidates: dict[int, tuple[int, float]]  # B -> (bytes, instructions)

    @property
    def key(self) -> str | tuple[str, int]:
        """``"dense"`` or ``("block-rle", B)``."""
        return "dense" if self.encoding is None else (self.encoding, self.block)

    @property
    def speedup(self) -> float:
        return self.dense_instructions / self.instructions


def dense_tiles(n: int) -> list[int]:
    """Token tile sizes tf_fully_connected_s8 runs for ``n`` tokens (its fc_fast schedule).

    Tiles of 6; the last 1-5 tokens: a tile of 4 or 2, a 6- or 4-tile overlapping the tokens
    before it (for 5 or 3 left), or one token alone.
    """
    tiles, t = [], 0
    while t < n:
        left = n - t
        size = 6 if left >= 6 else left - 1 if left in (5, 3) else left
        if left == 5 and n >= 6:
            size, t = 6, n - 6
        elif left == 3 and n >= 4:
            size, t = 4, n - 4
        tiles.append(size)
        t += size
    return tiles


def dense_instructions(tokens: int, k: int, m: int, im2col: bool = False) -> float:
    """Estimated instructions of tf_fully_connected_s8 (or tf_conv2d_s8 with ``im2col``)."""
    tiles = dense_tiles(tokens)
    est = DENSE_PER_CALL + DENSE_PER_TILE * len(tiles) + DENSE_PER_INPUT * sum(tiles) * k
    for size in tiles:
        est += DENSE_PER_GROUP_ROW[size] * (k / 4) * m + DENSE_PER_ROW[size] * m
    return est + (DENSE_IM2COL_PER_BYTE * tokens * k if im2col else 0.0)


def sparse_instructions(
    tokens: int,
    k: int,
    m: int,
    block: int,
    entries: int,
    empty_rows: int = 0,
    im2col: bool = False,
    channels_aligned: bool = True,
) -> float:
    """Estimated instructions of the block-sparse kernel; ``entries`` = stored entries.

    ``im2col``: a k x k conv (k = kh*kw*Cin) whose patches are widened per pixel;
    ``channels_aligned``: Cin % 4 == 0 (B >= 4 then widens straight from the input).
    """
    full, rest = divmod(tokens, TILE)
    if im2col:
        per_byte = SPARSE_CONV_PER_BYTE[block]
        if block >= 4 and not channels_aligned:
            per_byte = SPARSE_CONV_GATHER_PER_BYTE
        per_token = SPARSE_CONV_PER_PIXEL
        widened = tokens
    else:
        per_byte, per_token = SPARSE_PER_INPUT[block], SPARSE_PER_TOKEN
        widened = tokens + (tokens & 1) if block == 1 else tokens  # B = 1 widens token pairs
    table = im2col or full > 0  # the conv's plan always builds it
    return (
        SPARSE_PER_CALL
        + (SPARSE_PER_ROW if table else SPARSE_PER_ROW_CHECK) * m
        + full * (SPARSE_PER_ROW_TILE * (m - empty_rows) + SPARSE_PER_EMPTY_ROW_TILE * empty_rows)
        + full * entries * SPARSE_PER_BLOCK[block]
        + rest * (SPARSE_PER_ROW_TOKEN * m + entries * SPARSE_PER_BLOCK_TOKEN[block])
        + per_byte * widened * k
        + per_token * tokens
    )


def choose_storage(
    weights: np.ndarray,
    tokens: int,
    blocks: tuple[int, ...] | None = BLOCKS,
    im2col: bool = False,
    channels_aligned: bool = True,
    bytes_weight: float = 0.0,
) -> StorageChoice:
    """Dense or block-rle with which B, for a layer applying ``weights`` to ``tokens`` rows.

    ``tokens`` is the number of activation rows the weights meet per call (tokens of a
    linear, output pixels of a conv); ``im2col=True`` for a k x k conv (not 1x1 stride 1),
    with ``channels_aligned`` telling whether Cin % 4 == 0. Block-rle is chosen only when it
    is both smaller and faster than dense; among the B that are, the one with the lowest
    ``instructions * (1 + bytes_weight * bytes / dense_bytes)`` wins (instructions alone by
    default), ties going to fewer bytes. ``blocks=None`` means every B. The result's
    ``.encoding`` is None for dense (as ``Tensor.encoding``) or ``"block-rle"``; ``.key`` is
    ``"dense"`` or ``("block-rle", B)``.
    """
    blocks = BLOCKS if blocks is None else blocks
    m, k = as_matrix(weights).shape
    dense_bytes = m * k
    dense_est = dense_instructions(tokens, k, m, im2col)
    cands: dict[int, tuple[int, float]] = {}
    for b in blocks:
        st = block_stats(weights, b)
        est = sparse_instructions(tokens, k, m, b, st.entries, st.empty_rows, im2col,
                                  channels_aligned)  # fmt: skip
        cands[b] = (st.total_bytes, est)
    best = None
    for b, (size, est) in cands.items():
        if size >= dense_bytes or est >= dense_est:
            continue
        score = (est * (1.0 + bytes_weight * size / dense_bytes), size)
        if best is None or score < best[0]:
            best = (score, b)
    if best is None:
        return StorageChoice(None, 0, dense_bytes, dense_est, dense_bytes, dense_est, cands)
    b = best[1]
    return StorageChoice(ENCODING, b, cands[b][0], cands[b][1], dense_bytes, dense_est, cands)
