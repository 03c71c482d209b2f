"""Host-built sparse C kernels equal the dense numpy references bit for bit.

The host build runs the portable C tile: the format walk, the widened layouts of every B,
partial tiles, the SMMLA requantization table and the general requantization path are all
exercised here. The ARM assembly (tiles, one-token routines, widening, the table-driven row
kinds) runs under QEMU in test_arm_kernels_match_reference_on_qemu, on edge cases, and in
``tinyformer bench kernels``, which compares every layer's output checksum with the reference.
"""

import numpy as np
import pytest
from host_kernels import load, ptr
from qemu_layers import align16, run_on_qemu
from test_conv_kernels import random_conv as dense_conv  # tests/ is on sys.path

from tinyformer.engine.intmath import quantize_multipliers
from tinyformer.engine.ops.conv import conv2d, fold_conv_bias, output_size
from tinyformer.engine.ops.linear import fold_input_zero_point, fully_connected
from tinyformer.engine.ops.sparse import (
    c_arrays,
    sparse_conv2d,
    sparse_conv2d_scratch_bytes,
    sparse_fc_scratch_bytes,
    sparse_fully_connected,
)
from tinyformer.engine.sparse_format import BLOCKS, encode, prune_blocks

CANARY = 0x5A


def guarded(n: int, dtype=np.uint8) -> tuple[np.ndarray, np.ndarray]:
    """An aligned buffer of n elements followed by 64 canary elements (both views)."""
    buf = np.full(n + 64, CANARY, dtype)
    return buf[:n], buf[n:]


def requant_params(rng: np.random.Generator, depth: int, m: int, big: bool = False):
    if big:  # real multipliers near 1: shifts >= -1, the general requantization path
        mult, shift = quantize_multipliers(rng.uniform(0.3, 3.0, m))
    else:
        scale = rng.uniform(0.2, 2.0) / np.sqrt(depth) / 64
        mult, shift = quantize_multipliers(scale * rng.uniform(0.5, 1.5, m))
    return mult, shift


def random_fc(rng: np.random.Generator, n: int, k: int, m: int, block: int, sparsity: float,
              big: bool = False) -> dict:  # fmt: skip
    w = rng.integers(-128, 128, (m, k), dtype=np.int8)
    w = prune_blocks(w, block, sparsity)
    mult, shift = requant_params(rng, k, m, big)
    if big:
        x = rng.integers(-4, 5, (n, k), dtype=np.int8)
        w = np.clip(w, -3, 3).astype(np.int8)
    else:
        x = rng.integers(-128, 128, (n, k), dtype=np.int8)
    full = rng.random() < 0.5
    return {
        "x": x,
        "weights": w,
        "bias": rng.integers(-5000, 5000, m, dtype=np.int32),
        "input_zp": int(rng.integers(-128, 128)),
        "output_zp": int(rng.integers(-128, 128)),
        "multiplier": mult,
        "shift": shift,
        "act_min": -128 if full else int(rng.integers(-128, -60)),
        "act_max": 127 if full else int(rng.integers(60, 128)),
    }


def c_sparse_fc(p: dict, block: int) -> np.ndarray:
    n, k = p["x"].shape
    m = p["weights"].shape[0]
    blob = c_arrays(encode(p["weights"], block))["weights"]
    bias = fold_input_zero_point(p["weights"], p["bias"], p["input_zp"])
    out, out_guard = guarded(n * m, np.int8)
    scratch, guard = guarded(sparse_fc_scratch_bytes(k, m, block))
    rc = load().tf_sparse_fully_connected_s8(
        ptr(p["x"]), ptr(blob), ptr(bias), ptr(p["multiplier"]), ptr(p["shift"]),
        p["output_zp"], p["act_min"], p["act_max"], n, k, m, ptr(out), ptr(scratch),
    )  # fmt: skip
    assert rc == 0
    assert np.all(guard == CANARY) and np.all(out_guard == CANARY), "buffer overrun"
    return out.reshape(n, m)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("seed", range(8))
def test_fc_matches_dense_reference(block: int, seed: int) -> None:
    rng = np.random.default_rng(100 * block + seed)
    n, k, m = (int(v) for v in rng.integers(1, 40, 3))
    sparsity = float(rng.choice([0.0, 0.3, 0.75, 0.95, 1.0]))
    p = random_fc(rng, n, k, m, block, sparsity)
    np.testing.assert_array_equal(c_sparse_fc(p, block), fully_connected(**p))


@pytest.mark.parametrize("block", BLOCKS)
def test_fc_edge_shapes(block: int) -> None:
    rng = np.random.default_rng(block)
    # k not a multiple of B or 4, tiles of 8 plus every remainder, one token, one row
    for n, k, m in [(8, 3, 5), (17, 21, 9), (1, 1, 1), (9, 37, 2), (16, 64, 7), (23, 5, 33)]:
        p = random_fc(rng, n, k, m, block, 0.5)
        np.testing.assert_array_equal(c_sparse_fc(p, block), fully_connected(**p))


@pytest.mark.parametrize("block", BLOCKS)
def test_fc_long_gaps_and_empty_rows(block: int) -> None:
    rng = np.random.default_rng(7)
    k = 16 * 300
    p = random_fc(rng, 9, k, 4, block, 0.0)
    w = np.zeros_like(p["weights"])
    w[0, :block] = 3  # first and last block only: a gap bridged by fillers
    w[0, -1] = -5
    w[2, -2] = 7  # leading gap
    p["weights"] = w  # rows 1 and 3 empty
    p["x"] = rng.integers(-128, 128, (9, k), dtype=np.int8)
    np.testing.assert_array_equal(c_sparse_fc(p, block), fully_connected(**p))


@pytest.mark.parametrize("block", BLOCKS)
def test_fc_general_requantization(block: int) -> None:
    # shifts >= -1 leave the SMMLA table for tf_requantize; so does a zero multiplier row
    rng = np.random.default_rng(50 + block)
    p = random_fc(rng, 11, 19, 6, block, 0.4, big=True)
    np.testing.assert_array_equal(c_sparse_fc(p, block), fully_connected(**p))
    q = random_fc(rng, 16, 24, 5, block, 0.4)
    q["multiplier"] = q["multiplier"].copy()
    q["multiplier"][2] = 0
    q["shift"] = q["shift"].copy()
    q["shift"][2] = 0
    np.testing.assert_array_equal(c_sparse_fc(q, block), fully_connected(**q))


def test_fc_rejects_a_mismatched_blob() -> None:
    rng = np.random.default_rng(0)
    p = random_fc(rng, 4, 8, 3, 4, 0.5)
    blob = c_arrays(encode(p["weights"], 4))["weights"]
    out = np.zeros((4, 2), np.int8)  # m = 2, the blob has 3 rows
    scratch = np.zeros(sparse_fc_scratch_bytes(8, 3, 4), np.uint8)
    bias = np.zeros(3, np.int32)
    rc = load().tf_sparse_fully_connected_s8(
        ptr(p["x"]), ptr(blob), ptr(bias), ptr(p["multiplier"]), ptr(p["shift"]), 0, -128,
        127, 4, 8, 2, ptr(out), ptr(scratch),
    )  # fmt: skip
    assert rc == -1 and not out.any()


def test_python_reference_decodes() -> None:
    rng = np.random.default_rng(1)
    p = random_fc(rng, 5, 30, 7, 4, 0.6)
    blob = encode(p["weights"], 4)
    args = {k: v for k, v in p.items() if k != "weights"}
    np.testing.assert_array_equal(sparse_fully_connected(blob=blob, **args), fully_connected(**p))


# -- conv -------------------------------------------------------------------------------------


def random_conv(rng: np.random.Generator, block: int, sparsity: float, **fixed) -> dict:
    """A dense conv problem (k <= 5, smaller maps) with its weights block-pruned."""
    p = dense_conv(rng, False, ks=(1, 3, 5), size_below=11, channels_below=20, **fixed)
    p["weights"] = prune_blocks(p["weights"], block, sparsity)
    return p


def c_sparse_conv(p: dict, block: int) -> np.ndarray:
    h, w, cin = p["x"].shape
    cout, kh, kw, _ = p["weights"].shape
    top, left, bottom, right = p["padding"]
    ho = output_size(h, kh, p["stride"], top, bottom)
    wo = output_size(w, kw, p["stride"], left, right)
    blob = c_arrays(encode(p["weights"], block))["weights"]
    bias = fold_conv_bias(p["weights"], p["bias"], p["input_zp"])
    out, out_guard = guarded(ho * wo * cout, np.int8)
    scratch, guard = guarded(sparse_conv2d_scratch_bytes(cin, kh, kw, cout, block))
    rc = load().tf_sparse_conv2d_s8(
        ptr(p["x"]), h, w, cin, ptr(blob), cout, kh, kw, ptr(bias), ptr(p["multiplier"]),
        ptr(p["shift"]), p["input_zp"], p["output_zp"], p["stride"], *p["padding"],
        p["act_min"], p["act_max"], ptr(out), ptr(scratch),
    )  # fmt: skip
    assert rc == 0
    assert np.all(guard == CANARY) and np.all(out_guard == CANARY), "buffer overrun"
    return out.reshape(ho, wo, cout)


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("seed", range(6))
def test_conv_matches_dense_reference(block: int, seed: int) -> None:
    rng = np.random.default_rng(1000 * block + seed)
    p = random_conv(rng, block, float(rng.choice([0.0, 0.5, 0.9])))
    np.testing.assert_array_equal(c_sparse_conv(p, block), conv2d(**p))


@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize(
    "shape",
    [
        # (h, w, cin, cout, k, stride, padding)
        (8, 8, 16, 8, 3, 1, (1, 1, 1, 1)),  # 3x3 "same", 64 pixels: full tiles
        (9, 7, 5, 6, 3, 2, (1, 0, 1, 1)),  # stride 2, odd input, asymmetric padding
        (9, 7, 8, 6, 3, 2, (1, 0, 1, 1)),  # the same with Cin % 4 == 0: widened in place
        (7, 7, 4, 5, 5, 1, (2, 2, 2, 2)),  # 5x5, 49 pixels: a one-pixel tail tile
        (6, 6, 8, 12, 1, 1, (0, 0, 0, 0)),  # pointwise fast path (sparse FC over pixels)
        (5, 4, 7, 3, 1, 2, (0, 0, 0, 0)),  # 1x1 stride 2: not the fast path
        (1, 1, 3, 4, 3, 1, (1, 1, 1, 1)),  # one pixel, mostly padding
    ],
)
def test_conv_shapes(block: int, shape) -> None:
    h, w, cin, cout, k, stride, pad = shape
    rng = np.random.default_rng(block + h)
    p = random_conv(rng, block, 0.6, h=h, w=w, cin=cin, cout=cout, k=k, stride=stride,
                    padding=pad)  # fmt: skip
    np.testing.assert_array_equal(c_sparse_conv(p, block), conv2d(**p))


def test_python_conv_reference_decodes() -> None:
    rng = np.random.default_rng(2)
    p = random_conv(rng, 4, 0.5, k=3)
    kh = p["weights"].shape[1]
    args = {k: v for k, v in p.items() if k != "weights"}
    out = sparse_conv2d(blob=encode(p["weights"], 4), k_h=kh, k_w=kh, **args)
    np.testing.assert_array_equal(out, conv2d(**p))


# -- the ARM build under QEMU -----------------------------------------------------------------


def _qemu_cases(block: int) -> list[tuple[str, dict]]:
    """Edge cases of the assembly paths: tiles of 8 and the one-token routines (every n % 8),
    k % 4 tails, empty rows (found by the first tile, short-cut by the next), filler gaps,
    a dead channel (multiplier 0, shift 0), a narrow activation range, shifts outside the
    SMMLA form (the portable path), and the conv paths (direct widening, gathered, 1x1)."""
    rng = np.random.default_rng(900 + block)
    cases = []
    for n, k, m, s in [(17, 21, 9, 0.5), (13, 37, 33, 0.9), (8, 3, 5, 0.0), (1, 1, 1, 0.0),
                       (24, 64, 12, 0.95), (7, 40, 6, 0.3)]:  # fmt: skip
        cases.append(("fc", random_fc(rng, n, k, m, block, s)))
    p = random_fc(rng, 16, 24, 7, block, 0.5)
    p["weights"][[1, 4]] = 0  # empty rows
    p["multiplier"], p["shift"] = p["multiplier"].copy(), p["shift"].copy()
    p["multiplier"][2], p["shift"][2] = 0, 0  # a dead channel
    cases.append(("fc", p))
    cases.append(("fc", random_fc(rng, 11, 19, 6, block, 0.4, big=True)))
    k = block * 260  # first and last block: a gap bridged by fillers
    p = random_fc(rng, 9, k, 3, block, 0.0)
    w = np.zeros_like(p["weights"])
    w[0, :block], w[0, -1], w[2, -2] = 3, -5, 7
    p["weights"] = w
    cases.append(("fc", p))
    for h, w_, cin, cout, kk, stride, pad in [
        (9, 7, 8, 6, 3, 2, (1, 0, 1, 1)),
        (9, 7, 5, 6, 3, 2, (1, 0, 1, 1)),
        (6, 6, 8, 12, 1, 1, (0, 0, 0, 0)),
    ]:
        cases.append(("conv", random_conv(rng, block, 0.6, h=h, w=w_, cin=cin, cout=cout, k=kk,
                                          stride=stride, padding=pad)))  # fmt: skip
    return cases


def test_arm_kernels_match_reference_on_qemu(tmp_path) -> None:
    """The Cortex-M7 assembly (host tests run the portable C) against the references."""
    from tinyformer.engine.cmodel import CArray, CModel
    from tinyformer.engine.ops.sparse import CONV_HEADER, FC_HEADER, conv2d_call, fc_call

    cm = CModel(name="sparse_edges", arena_bytes=0, input_offset=0, input_bytes=0,
                output_offset=0, output_bytes=0, includes=[FC_HEADER, CONV_HEADER])  # fmt: skip
    cases = [(b, op, p) for b in BLOCKS for op, p in _qemu_cases(b)]

    # arena: [inputs][outputs][scratch], each case at its own offsets; one shared scratch
    in_offs, out_offs, expected, scratch = [], [], [], 0
    in_off = out_off = 0
    for i, (b, op, p) in enumerate(cases):
        cm.constants.append(CArray(f"c_w{i}", np.frombuffer(encode(p["weights"], b), np.uint8)))
        cm.constants.append(CArray(f"c_m{i}", np.asarray(p["multiplier"], np.int32)))
        cm.constants.append(CArray(f"c_s{i}", np.asarray(p["shift"], np.int32)))
        if op == "fc":
            (_, k), m = p["x"].shape, p["weights"].shape[0]
            bias = fold_input_zero_point(p["weights"], p["bias"], p["input_zp"])
            expected.append(fully_connected(**p).ravel())
            scratch = max(scratch, sparse_fc_scratch_bytes(k, m, b))
        else:
            cin, (cout, kh, kw, _) = p["x"].shape[2], p["weights"].shape
            bias = fold_conv_bias(p["weights"], p["bias"], p["input_zp"])
            expected.append(conv2d(**p).ravel())
            scratch = max(scratch, sparse_conv2d_scratch_bytes(cin, kh, kw, cout, b))
        cm.constants.append(CArray(f"c_b{i}", np.asarray(bias, np.int32)))
        in_offs.append(in_off)
        out_offs.append(out_off)
        in_off += align16(p["x"].size)
        out_off += align16(expected[-1].size)
    out_base = align16(in_off)
    s_base = out_base + align16(out_off)
    for i, (b, op, p) in enumerate(cases):
        x, y, s = (
            f"(arena + {in_offs[i]})",
            f"(arena + {out_base + out_offs[i]})",
            f"(arena + {s_base})",
        )
        args = (f"c_b{i}", f"c_m{i}", f"c_s{i}")
        if op == "fc":
            (n, k), m = p["x"].shape, p["weights"].shape[0]
            code = fc_call(x, f"c_w{i}", *args, p["output_zp"], p["act_min"], p["act_max"], n,
                           k, m, y, s)  # fmt: skip
        else:
            h, w, cin = p["x"].shape
            cout, kh, kw, _ = p["weights"].shape
            code = conv2d_call(x, h, w, cin, f"c_w{i}", cout, kh, kw, *args, p["input_zp"],
                               p["output_zp"], p["stride"], p["padding"], p["act_min"],
                               p["act_max"], y, s)  # fmt: skip
        cm.layers.append((f"{op} B={b}", code))
    cm.input_bytes = in_off
    cm.output_offset, cm.output_bytes = out_base, out_off
    cm.arena_bytes = s_base + align16(scratch)
    data = np.zeros(in_off, np.int8)
    for off, (_, _, p) in zip(in_offs, cases, strict=True):
        data[off : off + p["x"].size] = p["x"].ravel()
    got = np.frombuffer(run_on_qemu(cm, data.tobytes(), tmp_path).output, np.int8)
    for i, (b, op, _) in enumerate(cases):
        ref = expected[i]
        np.testing.assert_array_equal(
            got[out_offs[i] : out_offs[i] + ref.size], ref, err_msg=f"case {i}: {op} B={b}"
        )
