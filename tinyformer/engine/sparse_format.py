"""The block run-length ("block-rle") sparse weight format and block pruning.

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

:func:`block_stats` gives what a blob of given weights would hold without encoding it; the
engine's cost model (:mod:`tinyformer.engine.sparse_cost`) predicts the kernels' work from it.
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
        return blob_bytes(self.rows, self.block, self.entries)

    @property
    def density(self) -> float:
        """Fraction of blocks that are non-zero."""
        total = self.rows * self.blocks_per_row
        return self.nnz_blocks / total if total else 0.0


# -- blocks -----------------------------------------------------------------------------------


def as_matrix(weights: np.ndarray) -> np.ndarray:
    """The [rows][cols] int8 matrix the format stores ``weights`` (rows first) as."""
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
    return np.any(_blocks(as_matrix(weights), _check_block(block)) != 0, axis=2)


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
    mat = as_matrix(w)
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
    w = as_matrix(weights)
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


def blob_bytes(rows: int, block: int, entries: int) -> int:
    """Bytes of a blob: header, one entry of 1 + B bytes each, a row end per row, matrix end."""
    return HEADER_BYTES + rows + 1 + entries * (1 + block)


@dataclass(frozen=True)
class BlockStats:
    """What the blob of a matrix holds, computed without encoding it."""

    rows: int
    cols: int
    block: int
    nnz_blocks: int  # non-zero blocks
    entries: int  # stored entries, fillers included
    empty_rows: int  # rows without any entry

    @property
    def total_bytes(self) -> int:
        return blob_bytes(self.rows, self.block, self.entries)


def block_stats(weights: np.ndarray, block: int) -> BlockStats:
    """The :class:`BlockStats` of ``encode(weights, block)``."""
    mask = block_mask(weights, block)
    nnz = int(mask.sum())
    fillers = 0
    for row in mask:
        idx = np.flatnonzero(row)
        if idx.size:
            gaps = np.diff(np.concatenate(([-1], idx))) - 1
            fillers += int((gaps // (MAX_GAP + 1)).sum())
    rows, cols = as_matrix(weights).shape
    empty = int((~mask.any(axis=1)).sum())
    return BlockStats(rows, cols, int(block), nnz, nnz + fillers, empty)


def encoded_size(weights: np.ndarray, block: int) -> int:
    """Bytes of ``encode(weights, block)``, computed without encoding."""
    return block_stats(weights, block).total_bytes


def _bytes(blob: bytes | bytearray | memoryview | np.ndarray) -> bytes:
    if isinstance(blob, np.ndarray):
        return blob.tobytes()
    return bytes(blob)
