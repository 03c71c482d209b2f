"""The block-rle format: round trips, edge cases, damaged blobs, statistics and pruning."""

import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyformer.engine.sparse_format import (
    BLOCKS,
    HEADER_BYTES,
    MAX_GAP,
    SparseFormatError,
    block_density,
    block_mask,
    block_stats,
    decode,
    encode,
    encoded_size,
    header,
    prune_blocks,
)


def sparse_matrix(rng: np.random.Generator, rows: int, cols: int, block: int, density: float):
    w = rng.integers(-128, 128, (rows, cols), dtype=np.int8)
    return prune_blocks(w, block, 1.0 - density)


def roundtrip(w: np.ndarray, block: int) -> bytes:
    blob = encode(w, block)
    np.testing.assert_array_equal(decode(blob), w.reshape(w.shape[0], -1))
    h = header(blob)
    assert (h.rows, h.block, h.version) == (w.shape[0], block, 1)
    assert h.nnz_blocks == int(block_mask(w, block).sum())
    assert len(blob) == h.total_bytes == encoded_size(w, block)
    st = block_stats(w, block)
    assert (st.nnz_blocks, st.entries, st.total_bytes) == (h.nnz_blocks, h.entries, len(blob))
    assert st.empty_rows == int((~decode(blob).any(axis=1)).sum())
    return blob


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("seed", range(6))
def test_roundtrip_random(block: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    rows, cols = (int(v) for v in rng.integers(1, 60, 2))
    roundtrip(sparse_matrix(rng, rows, cols, block, rng.uniform(0, 1)), block)


@settings(max_examples=60, deadline=None)
@given(
    block=st.sampled_from(BLOCKS),
    rows=st.integers(1, 6),
    cols=st.integers(1, 70),
    seed=st.integers(0, 2**32 - 1),
    density=st.floats(0.0, 1.0),
)
def test_roundtrip_property(block, rows, cols, seed, density) -> None:
    rng = np.random.default_rng(seed)
    w = rng.integers(-128, 128, (rows, cols), dtype=np.int8)
    # element-wise zeros too: blocks that are partly zero must survive as stored blocks
    w[rng.random((rows, cols)) < 0.3] = 0
    roundtrip(prune_blocks(w, block, 1.0 - density), block)


@pytest.mark.parametrize("block", BLOCKS)
def test_edge_matrices(block: int) -> None:
    rng = np.random.default_rng(block)
    roundtrip(np.zeros((5, 37), np.int8), block)  # all zero: only row ends
    dense = rng.integers(1, 128, (4, 33), dtype=np.int8)  # every block stored
    blob = roundtrip(dense, block)
    assert header(blob).nnz_blocks == 4 * -(-33 // block)
    mixed = dense.copy()
    mixed[1] = 0  # an empty row between full ones
    mixed[3, :-1] = 0  # a row whose only value is the last column (a partial block)
    roundtrip(mixed, block)
    roundtrip(np.full((1, 1), -128, np.int8), block)  # one value, K < B


def test_all_zero_matrix_layout() -> None:
    blob = encode(np.zeros((3, 10), np.int8), 4)
    assert blob[HEADER_BYTES:] == bytes([0xFF, 0xFF, 0xFF, 0xFE])
    assert header(blob).entries == 0


@pytest.mark.parametrize("block", BLOCKS)
def test_long_gaps_use_fillers(block: int) -> None:
    cols = 16 * 300
    w = np.zeros((3, cols), np.int8)
    w[0, 0] = 5
    w[0, -1] = -7  # one block at each end: a gap of nb - 2 blocks
    w[1, -1] = 1  # a leading gap
    nb = -(-cols // block)
    blob = roundtrip(w, block)
    h = header(blob)
    assert h.nnz_blocks == 3
    # row 0 bridges nb - 2 zero blocks, row 1 leads with nb - 1; row 2 is empty
    assert h.entries - h.nnz_blocks == (nb - 2) // (MAX_GAP + 1) + (nb - 1) // (MAX_GAP + 1)
    if block <= 16:
        assert h.entries > h.nnz_blocks  # 300 16-blocks already need a filler


def test_gap_boundaries() -> None:
    for gap in (MAX_GAP - 1, MAX_GAP, MAX_GAP + 1, 2 * MAX_GAP + 1, 2 * MAX_GAP + 2):
        w = np.zeros((1, gap + 2), np.int8)
        w[0, 0] = 1
        w[0, gap + 1] = 2
        roundtrip(w, 1)
        roundtrip(w[:, 1:], 1)


def test_conv_weights_flatten_per_output_channel() -> None:
    w = np.random.default_rng(0).integers(-5, 6, (6, 3, 3, 7), dtype=np.int8)
    np.testing.assert_array_equal(decode(encode(w, 4)), w.reshape(6, -1))


# -- damaged blobs ----------------------------------------------------------------------------


def good_blob() -> bytes:
    return encode(sparse_matrix(np.random.default_rng(3), 8, 40, 4, 0.5), 4)


def with_crc(blob: bytes) -> bytes:
    """Re-seal a stream edit so the structural checks, not the CRC, must catch it."""
    return blob[:24] + struct.pack("<I", zlib.crc32(blob[HEADER_BYTES:])) + blob[HEADER_BYTES:]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b[:10], "truncated"),
        (lambda b: b[:-1], "truncated"),
        (lambda b: b + b"\0", "after the end"),
        (lambda b: b"XXXX" + b[4:], "magic"),
        (lambda b: b[:4] + bytes([2]) + b[5:], "newer"),
        (lambda b: b[:4] + bytes([0]) + b[5:], "version 0"),
        (lambda b: b[:5] + bytes([3]) + b[6:], "block size"),
        (lambda b: b[:6] + bytes([1]) + b[7:], "flags"),
        (lambda b: b[:-5] + bytes([b[-5] ^ 0x10]) + b[-4:], "checksum"),
        (lambda b: b[:16] + struct.pack("<I", 9999) + b[20:], "non-zero blocks"),
    ],
)
def test_damaged_blobs_raise(mutate, message: str) -> None:
    with pytest.raises(SparseFormatError, match=message):
        decode(mutate(good_blob()))


def test_structural_damage_behind_a_valid_crc() -> None:
    w = np.zeros((2, 8), np.int8)
    w[0, 4:8] = 1
    blob = encode(w, 4)  # stream: [1, 1,1,1,1, FF, FF, FE]
    s = HEADER_BYTES
    bad_gap = blob[:s] + bytes([5]) + blob[s + 1 :]
    with pytest.raises(SparseFormatError, match="past its 2 blocks"):
        decode(with_crc(bad_gap))
    escape = blob[:s] + bytes([0xFE]) + blob[s + 1 :]
    with pytest.raises(SparseFormatError, match="gaps are"):
        decode(with_crc(escape))
    zero_block = blob[: s + 1] + bytes(4) + blob[s + 5 :]
    with pytest.raises(SparseFormatError, match="not a filler"):
        decode(with_crc(zero_block))
    no_end = blob[:-1] + bytes([0xFF])
    with pytest.raises(SparseFormatError):
        decode(with_crc(no_end))
    # padding past the last column must be zero
    v = np.zeros((1, 3), np.int8)
    v[0, 0] = 1
    pblob = bytearray(encode(v, 4))
    pblob[s + 4] = 9  # the 4th value of the only block: column 3, past cols = 3
    with pytest.raises(SparseFormatError, match="padding"):
        decode(with_crc(bytes(pblob)))


def test_header_rejects_newer_version_by_name() -> None:
    blob = bytearray(good_blob())
    blob[4] = 7
    with pytest.raises(SparseFormatError, match="version 7, newer"):
        header(bytes(blob))
    assert issubclass(SparseFormatError, ValueError)


def test_encode_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="block size"):
        encode(np.zeros((2, 2), np.int8), 3)
    with pytest.raises(ValueError, match="int8"):
        encode(np.zeros((2, 2), np.int16), 4)
    with pytest.raises(ValueError):
        encode(np.zeros(4, np.int8), 4)


# -- pruning ---------------------------------------------------------------------------


@pytest.mark.parametrize("block", BLOCKS)
def test_prune_hits_the_target(block: int) -> None:
    w = np.random.default_rng(block).integers(-128, 128, (32, 50), dtype=np.int8)
    w[w == 0] = 1
    for s in (0.0, 0.5, 0.9, 1.0):
        p = prune_blocks(w, block, s)
        total = 32 * -(-50 // block)
        assert abs(block_density(p, block) - (1 - round(s * total) / total)) < 1e-9
        kept = p != 0
        np.testing.assert_array_equal(p[kept], w[kept])  # kept blocks are untouched


def test_prune_keeps_the_largest_blocks() -> None:
    w = np.zeros((1, 16), np.int8)
    w[0, :4] = [1, 1, 1, 1]
    w[0, 4:8] = [9, 0, 0, 0]
    w[0, 8:12] = [-3, 3, -3, 3]
    w[0, 12:16] = [2, 0, 0, 0]
    p = prune_blocks(w, 4, 0.5)
    assert block_mask(p, 4).tolist() == [[False, True, True, False]]
    p1 = prune_blocks(w, 4, 0.5, norm="l1")
    assert block_mask(p1, 4).tolist() == [[False, True, True, False]]
