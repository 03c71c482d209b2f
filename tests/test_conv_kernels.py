"""Conv kernels: C conv2d / depthwise equal the numpy reference bit for bit, and the
reference itself equals the definition (a direct loop over taps with zero-point padding)."""

import numpy as np
import pytest
from host_kernels import load, ptr
from qemu_layers import align16, run_on_qemu

from tinyformer.engine.intmath import quantize_multipliers, requantize, smlal_requant_table
from tinyformer.engine.ops.conv import (
    conv2d,
    conv2d_scratch_bytes,
    depthwise_bias,
    depthwise_conv2d,
    depthwise_weights_s16,
    fold_conv_bias,
    output_size,
    same_padding,
)


def random_conv(
    rng: np.random.Generator,
    depthwise: bool,
    ks: tuple[int, ...] = (1, 3, 5, 7),
    size_below: int = 12,
    channels_below: int = 21,
    **fixed,
) -> dict:
    """Random conv problem (also test_sparse_kernels'); ``fixed`` overrides h, w, cin, cout,
    k, stride, padding; else k from ``ks``, sizes and channel counts below the bounds."""
    k = fixed.get("k", int(rng.choice(ks)))
    stride = fixed.get("stride", int(rng.integers(1, 3)))
    pad = fixed.get("padding", tuple(int(p) for p in rng.integers(0, k, 4)))
    h = fixed.get("h", int(rng.integers(max(1, k - pad[0] - pad[2]), size_below)))
    w = fixed.get("w", int(rng.integers(max(1, k - pad[1] - pad[3]), size_below)))
    cin = fixed.get("cin", int(rng.integers(1, channels_below)))
    cout = cin if depthwise else fixed.get("cout", int(rng.integers(1, channels_below)))
    depth = k * k * (1 if depthwise else cin)
    scale = rng.uniform(0.2, 1.5) / np.sqrt(depth) / 150
    mult, shift = quantize_multipliers(scale * rng.uniform(0.5, 1.5, cout))
    wshape = (k, k, cin) if depthwise else (cout, k, k, cin)
    input_zp = int(rng.integers(-128, 128))
    # Activations spread around their zero point (and clipped to int8), as real ones are.
    x = np.clip(input_zp + rng.normal(0, 60, (h, w, cin)), -128, 127).astype(np.int8)
    return {
        "x": x,
        "weights": rng.integers(-127, 128, wshape, dtype=np.int8),
        "bias": rng.integers(-3000, 3000, cout, dtype=np.int32),
        "input_zp": input_zp,
        "output_zp": int(rng.integers(-64, 65)),
        "multiplier": mult,
        "shift": shift,
        "stride": stride,
        "padding": pad,
        "act_min": int(rng.integers(-128, -60)),
        "act_max": int(rng.integers(60, 128)),
    }


def out_shape(p: dict, k: int, channels: int) -> tuple[int, int, int]:
    h, w, _ = p["x"].shape
    top, left, bottom, right = p["padding"]
    ho = output_size(h, k, p["stride"], top, bottom)
    return ho, output_size(w, k, p["stride"], left, right), channels


def guarded(n: int, dtype=np.uint8) -> tuple[np.ndarray, np.ndarray]:
    """An aligned buffer of n elements followed by 64 canary elements 0x5A (both views)."""
    buf = np.full(n + 64, 0x5A, dtype)
    return buf[:n], buf[n:]


def guarded_out(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    out, guard = guarded(int(np.prod(shape)), np.int8)
    return out.reshape(shape), guard


def c_conv2d(p: dict) -> np.ndarray:
    lib = load()
    h, w, cin = p["x"].shape
    cout, kh, kw, _ = p["weights"].shape
    out, out_guard = guarded_out(out_shape(p, kh, cout))
    bias = fold_conv_bias(p["weights"], p["bias"], p["input_zp"])
    scratch, guard = guarded(conv2d_scratch_bytes(cin, kh, kw))
    lib.tf_conv2d_s8(
        ptr(p["x"]), h, w, cin, ptr(p["weights"]), cout, kh, kw, ptr(bias), ptr(p["multiplier"]),
        ptr(p["shift"]), p["input_zp"], p["output_zp"], p["stride"], *p["padding"],
        p["act_min"], p["act_max"], ptr(out), ptr(scratch),
    )  # fmt: skip
    assert np.all(guard == 0x5A) and np.all(out_guard == 0x5A), "buffer overrun"
    return out


def test_depthwise_weights_s16_layout() -> None:
    w = np.arange(-60, 60, dtype=np.int8)[: 2 * 3 * 6].reshape(2, 3, 6)
    words = depthwise_weights_s16(w)
    assert words.shape == (2, 2, 3, 2) and words.dtype == np.uint32
    half = words.view(np.int16).reshape(2, 2, 3, 2, 2)  # [g][ky][kx][word][low, high]
    np.testing.assert_array_equal(half[0, ..., 0, 0], w[..., 0])
    np.testing.assert_array_equal(half[0, ..., 1, 0], w[..., 1])
    np.testing.assert_array_equal(half[0, ..., 0, 1], w[..., 2])
    np.testing.assert_array_equal(half[0, ..., 1, 1], w[..., 3])
    np.testing.assert_array_equal(half[1, ..., 0, 0], w[..., 4])
    np.testing.assert_array_equal(half[1, ..., 1, 0], w[..., 5])
    assert not half[1, ..., :, 1].any()  # channels 6 and 7 do not exist


def c_depthwise(p: dict) -> np.ndarray:
    """The C kernel's output, the same with the requant table (when the shifts allow one)
    as without."""
    h, w, c = p["x"].shape
    kh, kw, _ = p["weights"].shape
    bias = depthwise_bias(p["weights"], p["bias"])
    weights = depthwise_weights_s16(p["weights"])
    table = smlal_requant_table(p["multiplier"], p["shift"], p["output_zp"])
    outs = []
    for requant in [None] if table is None else [None, table]:
        out, guard = guarded_out(out_shape(p, kh, c))
        rq = (ptr(p["multiplier"]), ptr(p["shift"]), None) if requant is None else (
            None, None, ptr(requant))  # fmt: skip
        load().tf_depthwise_conv2d_s8(
            ptr(p["x"]), h, w, c, ptr(weights), kh, kw, ptr(bias), *rq, p["input_zp"],
            p["output_zp"], p["stride"], *p["padding"], p["act_min"], p["act_max"], ptr(out),
        )  # fmt: skip
        assert np.all(guard == 0x5A), "output overrun"
        outs.append(out)
    np.testing.assert_array_equal(outs[-1], outs[0])
    return outs[0]


def naive(p: dict, depthwise: bool) -> np.ndarray:
    """The definition, tap by tap: out-of-bounds taps read a real zero."""
    x, wts, zp = p["x"].astype(np.int64), p["weights"].astype(np.int64), p["input_zp"]
    if depthwise:
        eye = np.eye(x.shape[2], dtype=np.int64)  # as a dense conv: w[o][i][j][c] = (o == c) w
        wts = wts.transpose(2, 0, 1)[:, :, :, None] * eye[:, None, None, :]
    top, left, _, _ = p["padding"]
    cout, k = wts.shape[0], wts.shape[1]
    ho, wo, _ = out_shape(p, k, cout)
    acc = np.tile(p["bias"].astype(np.int64), (ho, wo, 1))
    for oy in range(ho):
        for ox in range(wo):
            for i in range(k):
                for j in range(k):
                    y, xx = oy * p["stride"] - top + i, ox * p["stride"] - left + j
                    if 0 <= y < x.shape[0] and 0 <= xx < x.shape[1]:
                        acc[oy, ox] += wts[:, i, j, :] @ (x[y, xx] - zp)
    out = requantize(acc, p["multiplier"], p["shift"]) + p["output_zp"]
    return np.clip(out, p["act_min"], p["act_max"]).astype(np.int8)


# The conv2d grid, shared with the QEMU suite of the assembly (hil/test_fc_conv_asm.py).
CONV_SEEDS = range(60)
# (h, w, cin, cout, k, stride, padding): odd sizes, stride 2 on odd inputs, asymmetric and
# one-sided padding, channels not a multiple of 4, tails of pixels
EDGE_SHAPES = [
    (7, 9, 3, 5, 3, 2, (1, 0, 1, 2)),
    (5, 5, 13, 7, 5, 1, (2, 2, 2, 2)),
    (9, 7, 6, 9, 7, 2, (3, 3, 3, 3)),
    (11, 6, 4, 4, 3, 1, (0, 2, 1, 0)),
    (3, 3, 9, 3, 1, 2, (0, 0, 0, 0)),
    (4, 5, 7, 11, 1, 1, (1, 0, 0, 1)),  # 1x1 with padding: not the fast path
    (1, 1, 5, 6, 3, 1, (1, 1, 1, 1)),  # one pixel, mostly padding
]
POINTWISE_SEEDS = range(12)
# cin % 4 == 0: patches go straight into the FC kernel's 6-pixel tiles (the last one
# overlapping), padding as constant groups
TILE_SHAPES = [
    (5, 5, 4, 3, 3, 1, (1, 1, 1, 1)),
    (7, 6, 8, 5, 3, 2, (1, 0, 1, 2)),
    (4, 9, 12, 7, 5, 1, (2, 2, 2, 2)),
    (3, 3, 16, 2, 3, 1, (0, 0, 0, 0)),  # one pixel: not enough for a tile
    (2, 4, 8, 9, 1, 1, (0, 1, 0, 1)),
    (6, 7, 32, 6, 3, 1, (1, 1, 1, 1)),
]
LARGE_MULTIPLIER_SEEDS = range(6)


def conv_case(seed: int) -> dict:
    return random_conv(np.random.default_rng(seed), depthwise=False)


def edge_case(shape) -> dict:
    h, w, cin, cout, k, stride, pad = shape
    rng = np.random.default_rng(h * 100 + w)
    return random_conv(rng, False, h=h, w=w, cin=cin, cout=cout, k=k, stride=stride, padding=pad)


def pointwise_case(seed: int) -> dict:
    rng = np.random.default_rng(1000 + seed)
    h, w = (int(v) for v in rng.integers(1, 14, 2))
    return random_conv(rng, False, k=1, stride=1, padding=(0, 0, 0, 0), h=h, w=w,
                       cin=int(rng.integers(1, 70)), cout=int(rng.integers(1, 70)))  # fmt: skip


def tile_case(shape, full_range: bool) -> dict:
    h, w, cin, cout, k, stride, pad = shape
    rng = np.random.default_rng(h * 1000 + w * 10 + cin)
    p = random_conv(rng, False, h=h, w=w, cin=cin, cout=cout, k=k, stride=stride, padding=pad)
    if full_range:
        p["act_min"], p["act_max"] = -128, 127
    return p


@pytest.mark.parametrize("seed", CONV_SEEDS)
def test_conv2d_matches_reference(seed: int) -> None:
    p = conv_case(seed)
    np.testing.assert_array_equal(c_conv2d(p), conv2d(**p))


@pytest.mark.parametrize("shape", EDGE_SHAPES)
def test_conv2d_edge_shapes(shape) -> None:
    p = edge_case(shape)
    np.testing.assert_array_equal(c_conv2d(p), conv2d(**p))


@pytest.mark.parametrize("seed", POINTWISE_SEEDS)
def test_pointwise_fast_path(seed: int) -> None:
    p = pointwise_case(seed)
    np.testing.assert_array_equal(c_conv2d(p), conv2d(**p))


@pytest.mark.parametrize("full_range", [False, True])
@pytest.mark.parametrize("shape", TILE_SHAPES)
def test_conv2d_tiles_from_input(shape, full_range: bool) -> None:
    p = tile_case(shape, full_range)
    np.testing.assert_array_equal(c_conv2d(p), conv2d(**p))


@pytest.mark.parametrize("seed", range(50))
def test_depthwise_matches_reference(seed: int) -> None:
    p = random_conv(np.random.default_rng(2000 + seed), depthwise=True)
    np.testing.assert_array_equal(c_depthwise(p), depthwise_conv2d(**p))


@pytest.mark.parametrize(
    "shape",
    [
        (7, 9, 3, 3, 2, (1, 0, 1, 2)),
        (9, 9, 17, 5, 2, (2, 2, 2, 2)),
        (5, 8, 8, 7, 1, (3, 3, 3, 3)),
        (6, 6, 12, 3, 1, (0, 2, 1, 0)),
        (1, 2, 5, 3, 1, (1, 1, 1, 1)),
        (5, 6, 37, 3, 1, (1, 1, 1, 1)),  # more channels than the kernel's 32-channel chunks
        (4, 5, 70, 5, 2, (2, 1, 2, 2)),
        (6, 6, 64, 3, 2, (0, 0, 1, 1)),
    ],
)
def test_depthwise_edge_shapes(shape) -> None:
    h, w, c, k, stride, pad = shape
    p = random_conv(np.random.default_rng(h * 10 + c), True, h=h, w=w, cin=c, k=k,
                    stride=stride, padding=pad)  # fmt: skip
    np.testing.assert_array_equal(c_depthwise(p), depthwise_conv2d(**p))


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_reference_is_the_definition(depthwise: bool, seed: int) -> None:
    p = random_conv(np.random.default_rng(3000 + seed), depthwise, h=6, w=5, cin=3, cout=4)
    ref = depthwise_conv2d(**p) if depthwise else conv2d(**p)
    np.testing.assert_array_equal(ref, naive(p, depthwise))


def large_multiplier_case(seed: int, depthwise: bool) -> dict:
    """Real multipliers near 1 (shifts -1..2, or all -1..0 for odd seeds): the kernels'
    general requantization path (the fast one needs every shift <= -2)."""
    rng = np.random.default_rng(4000 + seed)
    p = random_conv(rng, depthwise, k=3, cin=int(rng.integers(1, 11)))
    p["x"] = np.clip(p["input_zp"] + rng.integers(-3, 4, p["x"].shape), -128, 127).astype(np.int8)
    p["weights"] = rng.integers(-3, 4, p["weights"].shape, dtype=np.int8)
    p["bias"] = rng.integers(-20, 21, p["bias"].shape, dtype=np.int32)
    lo, hi = (0.26, 0.99) if seed % 2 else (0.3, 3.0)
    p["multiplier"], p["shift"] = quantize_multipliers(rng.uniform(lo, hi, p["bias"].size))
    return p


def padding_case(depthwise: bool) -> dict:
    """An input equal to its zero point is all real zeros: every output pixel, border ones
    included, is the bias alone."""
    p = random_conv(np.random.default_rng(7), depthwise, h=5, w=6, cin=8, cout=8, k=5,
                    stride=1, padding=(2, 1, 3, 4))  # fmt: skip
    p["input_zp"] = 93
    p["x"][:] = 93
    return p


@pytest.mark.parametrize("depthwise", [False, True])
@pytest.mark.parametrize("seed", LARGE_MULTIPLIER_SEEDS)
def test_large_multipliers(depthwise: bool, seed: int) -> None:
    p = large_multiplier_case(seed, depthwise)
    assert p["shift"].max() >= -1
    got = c_depthwise(p) if depthwise else c_conv2d(p)
    np.testing.assert_array_equal(got, depthwise_conv2d(**p) if depthwise else conv2d(**p))


@pytest.mark.parametrize("depthwise", [False, True])
def test_padding_is_a_real_zero(depthwise: bool) -> None:
    # Fails if padded taps contribute anything with the fold.
    p = padding_case(depthwise)
    expect = requantize(p["bias"].astype(np.int64), p["multiplier"], p["shift"])
    expect = np.clip(expect + p["output_zp"], p["act_min"], p["act_max"]).astype(np.int8)
    for got in (c_depthwise(p) if depthwise else c_conv2d(p), naive(p, depthwise)):
        np.testing.assert_array_equal(got, np.broadcast_to(expect, got.shape))


def test_same_padding() -> None:
    assert same_padding(7, 7, 3, 3, 2) == (1, 1, 1, 1)
    assert same_padding(8, 6, 3, 5, 2) == (0, 1, 1, 2)
    assert same_padding(5, 5, 1, 1, 1) == (0, 0, 0, 0)
    for h in range(1, 12):
        for s in (1, 2):
            top, _, bottom, _ = same_padding(h, h, 3, 3, s)
            assert output_size(h, 3, s, top, bottom) == -(-h // s)


@pytest.mark.parametrize("depthwise", [False, True])
def test_outputs_not_saturated_everywhere(depthwise: bool) -> None:
    # Guards the tests: random scales that clamp every output would hide kernel bugs.
    p = random_conv(np.random.default_rng(5), depthwise, h=9, w=9, cin=16, cout=16, k=3,
                    stride=1, padding=(1, 1, 1, 1))  # fmt: skip
    out = depthwise_conv2d(**p) if depthwise else conv2d(**p)
    assert len(np.unique(out)) > 40
    assert np.mean((out == p["act_min"]) | (out == p["act_max"])) < 0.2


def _depthwise_qemu_cases() -> list[dict]:
    """Depthwise shapes for the ARM assembly: heavy padding (k up to and beyond the map),
    whole 3x3 and 5x5 windows, rows of every tap count 1..8 and beyond (k = 9), strides 1 and 2,
    channels % 4 tails and more than the 32-channel chunks, input_zp != 0 and at -128."""
    rng = np.random.default_rng(77)
    shapes = [  # (h, w, c, k, stride, padding)
        (4, 4, 128, 5, 1, (2, 2, 2, 2)),  # the digits model's second depthwise
        (8, 8, 64, 5, 2, (2, 2, 2, 2)),
        (2, 2, 36, 5, 1, (2, 2, 2, 2)),
        (3, 3, 13, 7, 1, (3, 3, 3, 3)),
        (2, 3, 40, 7, 2, (3, 3, 3, 3)),
        (4, 4, 7, 5, 2, (1, 2, 2, 1)),
        (1, 1, 9, 5, 1, (2, 2, 2, 2)),
        (6, 7, 20, 3, 1, (1, 1, 1, 1)),
        (9, 8, 33, 3, 2, (0, 0, 1, 1)),
        (10, 10, 12, 9, 1, (4, 4, 4, 4)),  # rows longer than the unrolled 8 taps
        (8, 12, 8, 8, 1, (0, 3, 0, 4)),
        (9, 10, 44, 5, 1, (2, 2, 2, 2)),  # whole 5x5 windows, two chunks, a channel tail
        (11, 9, 16, 5, 2, (1, 2, 2, 1)),  # whole 5x5 windows at stride 2
    ]
    cases = []
    for i, (h, w, c, k, stride, pad) in enumerate(shapes):
        p = random_conv(rng, True, h=h, w=w, cin=c, k=k, stride=stride, padding=pad)
        if i < 3:
            p["input_zp"], p["act_min"], p["act_max"] = -128, -128, 127
            p["x"] = np.maximum(p["x"], -128).astype(np.int8)
        cases.append(p)
    return cases


def test_depthwise_arm_matches_reference_on_qemu(tmp_path) -> None:
    """The Cortex-M7 assembly (host tests run the portable C) against the reference."""
    from tinyformer.engine.cmodel import CArray, CModel

    cases = _depthwise_qemu_cases()
    cm = CModel(name="depthwise_edges", arena_bytes=0, input_offset=0, input_bytes=0,
                output_offset=0, output_bytes=0, includes=["tf_depthwise_conv2d_s8.h"])  # fmt: skip

    expected = [depthwise_conv2d(**p).ravel() for p in cases]
    in_offs = np.cumsum([0] + [align16(p["x"].size) for p in cases])
    out_offs = np.cumsum([0] + [align16(e.size) for e in expected])
    out_base = int(in_offs[-1])
    tables = 0
    for i, p in enumerate(cases):
        cm.constants += [
            CArray(f"c_w{i}", depthwise_weights_s16(p["weights"])),
            CArray(f"c_b{i}", depthwise_bias(p["weights"], p["bias"])),
        ]
        table = smlal_requant_table(p["multiplier"], p["shift"], p["output_zp"])
        if i % 2 == 0 and table is not None:  # half the cases on the table's assembly path
            rq, tables = f"NULL, NULL, c_rq{i}", tables + 1
            cm.constants.append(CArray(f"c_rq{i}", table.ravel()))
        else:
            rq = f"c_m{i}, c_s{i}, NULL"
            cm.constants += [
                CArray(f"c_m{i}", np.asarray(p["multiplier"], np.int32)),
                CArray(f"c_s{i}", np.asarray(p["shift"], np.int32)),
            ]
        (h, w, c), k = p["x"].shape, p["weights"].shape[0]
        pads = ", ".join(str(v) for v in p["padding"])
        code = (
            f"    tf_depthwise_conv2d_s8((arena + {in_offs[i]}), {h}, {w}, {c}, c_w{i}, {k}, "
            f"{k}, c_b{i}, {rq}, {p['input_zp']}, {p['output_zp']}, {p['stride']}, "
            f"{pads}, {p['act_min']}, {p['act_max']}, (arena + {out_base + out_offs[i]}));"
        )
        cm.layers.append((f"depthwise {h}x{w}x{c} k={k}", code))
    assert tables >= 5
    cm.input_bytes = out_base
    cm.output_offset, cm.output_bytes = out_base, int(out_offs[-1])
    cm.arena_bytes = out_base + int(out_offs[-1])
    data = np.zeros(out_base, np.int8)
    for off, p in zip(in_offs, cases, strict=False):
        data[off : off + p["x"].size] = p["x"].ravel()
    m = run_on_qemu(cm, data.tobytes(), tmp_path)
    got = np.frombuffer(m.output, np.int8)
    for i, ref in enumerate(expected):
        np.testing.assert_array_equal(
            got[out_offs[i] : out_offs[i] + ref.size], ref, err_msg=f"case {i}"
        )
