"""The block run-length ("block-rle") sparse weight format, its cost model and block pruning.

A weight matrix W [rows][cols] int8 (conv weights [Cout][kh][kw][Cin] are flattened per
output channel, so cols = kh * kw * Cin) is cut into blocks of B consecutive weights along
each row (B in 1, 2, 4, 8, 16). A row has nb = ceil(cols / B) blocks; when cols is not a
multiple of B the last block is *zero-padded in storage* to B values (the padding must be
zero; the kernels pad their widened activations to match). A block is stored when any of
its B values is non-zero.

Blob layout, version 1 (all integers little-endian)::

    offset size  field
    0      4     magic  b"TFSB"
    4      1     version (1)
    5      1     B, the block size: 1, 2, 4, 8 or 16
    6      2     flags, 0 (reserved)
    8      4     rows
    12     4     cols
    16     4     nnz: non-zero blocks (stored entries that are not fillers)
    20     4     entries: stored entries, fillers included
    24     4     CRC-32 (zlib) of the stream, bytes [28, end)
    28     ...   stream

    stream = row_0 row_1 ... row_{rows-1} 0xFE
    row    = entry* 0xFF
    entry  = gap:u8  value[B]:int8

``gap`` (0..253) is the number of all-zero blocks skipped since the end of the previous
entry of the row (since column 0 for the first entry), so the entry's block index is
previous index + 1 + gap. A run of 254 or more zero blocks is bridged by *filler* entries:
``gap = 253`` with B zero values, each consuming 254 block positions; the kernels multiply
a filler like any block (no escape branch in the hot loop; at most one wasted block per 254
skipped). 0xFF ends a row (an empty row is the single byte 0xFF) and 0xFE ends the matrix,
so the kernels need neither a per-row count nor a row count in a register: one compare per
block tells "next block" from "end of row". Total size: 28 + rows + 1 + entries * (1 + B).

Value bytes are in the natural column order. The kernels load a B >= 4 block's 4-byte groups
with one (unaligned) LDR each and sign-extend them with SXTB16 into (w0, w2) and (w1, w3)
halfword pairs, matching activations widened the same way; see
``firmware/kernels/tf_sparse_fully_connected_s8.h``.

Decoding validates everything: magic, version (a newer one is refused by name), B, flags,
length, CRC, block indices within the row, canonical zero padding and fillers, and the
counts; any problem raises :class:`SparseFormatError` saying which.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import numpy as np

MAGIC = b"TFSB"
VERSION = 1
BLOCKS = (1, 2, 4, 8, 16)
HEADER = struct.Struct("<4sBBHIIIII")
HEADER_BYTES = HEADER.size  # 28
MAX_GAP = 253  # largest gap an entry can carry; a filler entry bridges MAX_GAP + 1 blocks
ROW_END = 0xFF
MATRIX_END = 0xFE
ENCODING = "block-rle"


class SparseFormatError(ValueError):
    """A block-rle blob that cannot be read: not one, damaged, truncated or from a newer
    TinyFormer."""


@dataclass(frozen=True)
class SparseHeader:
    version: int
    block: int
    rows: int
    cols: int
    nnz_blocks: int  # non-zero blocks
    entries: int  # stored entries, fillers included
    crc32: int

    @property
    def blocks_per_row(self) -> int:
        return -(-self.cols // self.block)

    @property
    def total_bytes(self) -> int:
        return HEADER_BYTES + self.rows + 1 + self.entries * (1 + self.block)

    @property
    def density(self) -> float:
        """Fraction of blocks that are non-zero."""
        total = self.rows * self.blocks_per_row
        return self.nnz_blocks / total if total else 0.0


# -- blocks -----------------------------------------------------------------------------------


def _matrix(weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights)
    if w.dtype != np.int8:
        raise ValueError(f"block-rle stores int8 weights, got {w.dtype}")
    if w.ndim < 2:
        raise ValueError(f"weights must be 2-D or more (rows first), got shape {w.shape}")
    w = w.reshape(w.shape[0], -1)
    if w.shape[0] < 1 or w.shape[1] < 1:
        raise ValueError(f"weights must have at least one row and one column, got {w.shape}")
    return w


def _check_block(block: int) -> int:
    if int(block) not in BLOCKS:
        raise ValueError(f"block size must be one of {BLOCKS}, got {block}")
    return int(block)


def _blocks(w: np.ndarray, block: int) -> np.ndarray:
    """[rows][nb][B] view of the zero-padded matrix."""
    pad = (-w.shape[1]) % block
    if pad:
        w = np.pad(w, ((0, 0), (0, pad)))
    return w.reshape(w.shape[0], -1, block)


def block_mask(weights: np.ndarray, block: int) -> np.ndarray:
    """[rows][ceil(cols / B)] bool: which blocks hold a non-zero value."""
    return np.any(_blocks(_matrix(weights), _check_block(block)) != 0, axis=2)


def block_density(weights: np.ndarray, block: int) -> float:
    """Fraction of the B-blocks of ``weights`` that are non-zero (1 - block sparsity)."""
    return float(block_mask(weights, block).mean())


def prune_blocks(weights: np.ndarray, block: int, sparsity: float, norm: str = "l2") -> np.ndarray:
    """Zero the round(sparsity * blocks) blocks of smallest magnitude (whole matrix).

    Magnitude is the block's L2 (``norm="l2"``) or L1 norm; ties go to the earlier block, so
    the result is deterministic. Blocks already zero count as pruned first. Returns a copy
    with the original shape.
    """
    if not 0.0 <= sparsity <= 1.0:
        raise ValueError(f"sparsity must be in [0, 1], got {sparsity}")
    if norm not in ("l1", "l2"):
        raise ValueError(f"norm must be 'l1' or 'l2', got {norm!r}")
    w = np.asarray(weights)
    mat = _matrix(w)
    block = _check_block(block)
    cols = mat.shape[1]
    blocks = _blocks(mat, block).astype(np.int64)
    mag = (np.abs(blocks) if norm == "l1" else blocks * blocks).sum(axis=2).ravel()
    drop = round(sparsity * mag.size)
    order = np.argsort(mag, kind="stable")
    keep = np.ones(mag.size, bool)
    keep[order[:drop]] = False
    pruned = blocks * keep.reshape(blocks.shape[0], blocks.shape[1], 1)
    out = pruned.reshape(mat.shape[0], -1)[:, :cols].astype(np.int8)
    return out.reshape(w.shape)


# -- encode / decode --------------------------------------------------------------------------


def encode(weights: np.ndarray, block: int) -> bytes:
    """The block-rle blob of ``weights`` (int8, 2-D or rows-first N-D) with blocks of B."""
    w = _matrix(weights)
    block = _check_block(block)
    rows, cols = w.shape
    blocks = _blocks(w, block)
    mask = np.any(blocks != 0, axis=2)
    values = blocks.view(np.uint8)
    stream = bytearray()
    entries = nnz = 0
    filler = bytes([MAX_GAP]) + bytes(block)
    for r in range(rows):
        prev = -1
        for idx in np.flatnonzero(mask[r]).tolist():
            gap = idx - prev - 1
            while gap > MAX_GAP:
                stream += filler
                gap -= MAX_GAP + 1
                entries += 1
            stream.append(gap)
            stream += values[r, idx].tobytes()
            prev = idx
            entries += 1
            nnz += 1
        stream.append(ROW_END)
    stream.append(MATRIX_END)
    head = HEADER.pack(MAGIC, VERSION, block, 0, rows, cols, nnz, entries, zlib.crc32(stream))
    return head + bytes(stream)


def header(blob: bytes | bytearray | memoryview | np.ndarray) -> SparseHeader:
    """The header of a blob, checked against the blob's length (not its stream)."""
    data = _bytes(blob)
    if len(data) < HEADER_BYTES:
        raise SparseFormatError(
            f"block-rle blob truncated: {len(data)} bytes, the header alone is {HEADER_BYTES}"
        )
    magic, version, block, flags, rows, cols, nnz, entries, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise SparseFormatError(f"not a block-rle blob: magic {magic!r}, expected {MAGIC!r}")
    if version > VERSION:
        raise SparseFormatError(
            f"block-rle blob has format version {version}, newer than this TinyFormer reads "
            f"(up to {VERSION}): upgrade TinyFormer"
        )
    if version < 1:
        raise SparseFormatError(f"corrupt block-rle blob: format version {version}")
    if block not in BLOCKS:
        raise SparseFormatError(f"corrupt block-rle blob: block size {block} not in {BLOCKS}")
    if flags != 0:
        raise SparseFormatError(f"corrupt block-rle blob: unknown flags 0x{flags:04x}")
    if rows < 1 or cols < 1:
        raise SparseFormatError(f"corrupt block-rle blob: shape {rows} x {cols}")
    h = SparseHeader(version, block, rows, cols, nnz, entries, crc)
    if nnz > entries or nnz > rows * h.blocks_per_row:
        raise SparseFormatError(
            f"corrupt block-rle blob: {nnz} non-zero blocks in {entries} entries of a "
            f"{rows} x {h.blocks_per_row}-block matrix"
        )
    if len(data) < h.total_bytes:
        raise SparseFormatError(
            f"block-rle blob truncated: {len(data)} bytes, the header says {h.total_bytes}"
        )
    if len(data) > h.total_bytes:
        raise SparseFormatError(
            f"corrupt block-rle blob: {len(data) - h.total_bytes} bytes after the end "
            f"({h.total_bytes} expected)"
        )
    return h


def decode(blob: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """The dense int8 [rows][cols] matrix of a blob; every field and byte is validated."""
    data = _bytes(blob)
    h = header(data)
    stream = data[HEADER_BYTES:]
    if zlib.crc32(stream) != h.crc32:
        raise SparseFormatError("corrupt block-rle blob: stream checksum (CRC-32) mismatch")
    b, nb = h.block, h.blocks_per_row
    out = np.zeros((h.rows, nb * b), np.int8)
    src = np.frombuffer(stream, np.int8)
    pos = entries = nnz = 0
    for r in range(h.rows):
        idx = -1
        while True:
            gap = stream[pos]
            pos += 1
            if gap == ROW_END:
                break
            if gap > MAX_GAP:
                raise SparseFormatError(
                    f"corrupt block-rle blob: byte 0x{gap:02x} in row {r} at stream offset "
                    f"{pos - 1} (gaps are 0..{MAX_GAP})"
                )
            idx += gap + 1
            if idx >= nb:
                raise SparseFormatError(
                    f"corrupt block-rle blob: row {r} has a block at index {idx}, "
                    f"past its {nb} blocks"
                )
            values = src[pos : pos + b]
            pos += b
            entries += 1
            if values.any():
                nnz += 1
                out[r, idx * b : idx * b + b] = values
            elif gap != MAX_GAP:
                raise SparseFormatError(
                    f"corrupt block-rle blob: row {r} stores an all-zero block that is not a "
                    f"filler (gap {gap})"
                )
    if stream[pos] != MATRIX_END or pos + 1 != len(stream):
        raise SparseFormatError("corrupt block-rle blob: rows do not end where the stream does")
    if entries != h.entries or nnz != h.nnz_blocks:
        raise SparseFormatError(
            f"corrupt block-rle blob: {entries} entries and {nnz} non-zero blocks found, the "
            f"header says {h.entries} and {h.nnz_blocks}"
        )
    if out[:, h.cols :].any():
        raise SparseFormatError("corrupt block-rle blob: non-zero padding after the last column")
    return np.ascontiguousarray(out[:, : h.cols])


def encoded_size(weights: np.ndarray, block: int) -> int:
    """Bytes of ``encode(weights, block)``, computed without encoding."""
    return (
        HEADER_BYTES
        + _rows_and_entries(block_mask(weights, block))[1] * (1 + block)
        + (_matrix(weights).shape[0] + 1)
    )


def _rows_and_entries(mask: np.ndarray) -> tuple[int, int]:
    """(non-zero blocks, stored entries with fillers) of a block mask."""
    nnz = int(mask.sum())
    fillers = 0
    for row in mask:
        idx = np.flatnonzero(row)
        if idx.size:
            gaps = np.diff(np.concatenate(([-1], idx))) - 1
            fillers += int((gaps // (MAX_GAP + 1)).sum())
    return nnz, nnz + fillers


def _bytes(blob: bytes | bytearray | memoryview | np.ndarray) -> bytes:
    if isinstance(blob, np.ndarray):
        return blob.tobytes()
    return bytes(blob)


# -- cost model -------------------------------------------------------------------------------
#
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
TILE = 8
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
    w = _matrix(weights)
    m, k = w.shape
    dense_bytes = m * k
    dense_est = dense_instructions(tokens, k, m, im2col)
    cands: dict[int, tuple[int, float]] = {}
    for b in blocks:
        mask = block_mask(w, _check_block(b))
        _, entries = _rows_and_entries(mask)
        empty = int((~mask.any(axis=1)).sum())
        size = HEADER_BYTES + m + 1 + entries * (1 + b)
        est = sparse_instructions(tokens, k, m, b, entries, empty, im2col, channels_aligned)
        cands[b] = (size, est)
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
