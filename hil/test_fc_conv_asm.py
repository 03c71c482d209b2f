"""The dense fully connected and conv2d assembly (tf_fully_connected_s8_arm.S) on QEMU, bit
for bit against the numpy reference, over the host tests' grids.

The host tests (tests/test_fully_connected.py, tests/test_conv_kernels.py) run the kernels'
portable C; this suite runs the same problems through the Cortex-M7 assembly: every tile
tail (token counts 1-15 around the 6-, 4- and 2-token tiles, depths 1-36 around multiples
of 4, odd and even row counts), the one-token path, zero points, shifts in and out of the
fast form (the generic path), saturation to -128/127 and narrower activation ranges, conv
patches built straight into tiles or gathered. Weights and inputs sit at every alignment.

The same grids run again with TFLite's rounding (an imported model's build, tf_math.h's
TF_ROUNDING_TFLITE): the assembly's TFLite epilogues and generic path against the reference's
requantize_tflite.

Each firmware runs a few hundred to a couple of thousand layers, one kernel call each: the
problems' inputs and weights are constants in flash, every output lands in its own stretch
of the arena with an 8-byte canary after it, and every call's scratch ends right below a
canary, so an overrun of either shows too.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tinyformer.compiler.firmware import DEFAULT_STACK, Firmware
from tinyformer.engine.cmodel import CArray, CModel
from tinyformer.engine.intmath import requantize, requantize_tflite
from tinyformer.engine.ops.conv import conv2d, conv2d_scratch_bytes, fold_conv_bias
from tinyformer.engine.ops.linear import fc_scratch_bytes, fold_input_zero_point, fully_connected
from tinyformer.hil.measure import measure
from tinyformer.hil.targets.base import Target

# The host tests' grids (their problem generators and parameter lists).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import test_conv_kernels as conv_grid
import test_fully_connected as fc_grid

CANARY = 0x5A
GAP = 8  # canary bytes after each output and after the scratch
INPUT = 16


@dataclass(frozen=True)
class Call:
    label: str
    code: str  # C, with {out} and {scratch} for its output and scratch pointers
    expected: np.ndarray  # the reference's output, flat
    scratch: int  # bytes


@dataclass
class Suite:
    """Many kernel calls in one firmware: constants pooled, outputs side by side."""

    name: str
    header: str
    rounding: str = "single"  # or "tflite": the firmware's TF_ROUNDING_TFLITE
    pool8: bytearray = field(default_factory=bytearray)  # inputs and weights (flash)
    pool32: list[int] = field(default_factory=list)  # bias, multipliers, shifts (flash)
    calls: list[Call] = field(default_factory=list)
    _at: dict[tuple[bytes, int], int] = field(default_factory=dict)

    def int8(self, a: np.ndarray, align: int) -> str:
        """``a`` in the int8 pool at an address = align (mod 4), stored once; its C."""
        data = np.ascontiguousarray(a, np.int8).tobytes()
        if (data, align % 4) not in self._at:
            self.pool8 += bytes((align - len(self.pool8)) % 4)
            self._at[data, align % 4] = len(self.pool8)
            self.pool8 += data
        return f"(c_i8 + {self._at[data, align % 4]})"

    def int32(self, a: np.ndarray) -> str:
        off = len(self.pool32)
        self.pool32 += [int(v) for v in np.asarray(a).ravel()]
        return f"(c_i32 + {off})"

    def fc(self, label: str, p: dict, align: int) -> None:
        """tf_fully_connected_s8 on problem ``p``: inputs at ``align``, weights one on."""
        (n, k), m = p["x"].shape, p["weights"].shape[0]
        x, w = self.int8(p["x"], align), self.int8(p["weights"], align + 1)
        b = self.int32(fold_input_zero_point(p["weights"], p["bias"], p["input_zp"]))
        mult, shift = self.int32(p["multiplier"]), self.int32(p["shift"])
        code = (
            f"tf_fully_connected_s8({x}, {w}, {b}, {mult}, {shift}, {p['output_zp']}, "
            f"{p['act_min']}, {p['act_max']}, {n}, {k}, {m}, {{out}}, {{scratch}});"
        )
        want = fully_connected(**p, requant=self.requant).ravel()
        self.calls.append(Call(label, code, want, fc_scratch_bytes(k)))

    @property
    def requant(self) -> Callable[..., np.ndarray]:
        return requantize_tflite if self.rounding == "tflite" else requantize

    def conv(self, label: str, p: dict, align: int) -> None:
        """tf_conv2d_s8 on problem ``p``: inputs at ``align``, weights one on."""
        h, w, cin = p["x"].shape
        cout, kh, kw, _ = p["weights"].shape
        x, wt = self.int8(p["x"], align), self.int8(p["weights"], align + 1)
        b = self.int32(fold_conv_bias(p["weights"], p["bias"], p["input_zp"]))
        mult, shift = self.int32(p["multiplier"]), self.int32(p["shift"])
        pads = ", ".join(str(v) for v in p["padding"])
        code = (
            f"tf_conv2d_s8({x}, {h}, {w}, {cin}, {wt}, {cout}, {kh}, {kw}, {b}, {mult}, "
            f"{shift}, {p['input_zp']}, {p['output_zp']}, {p['stride']}, {pads}, "
            f"{p['act_min']}, {p['act_max']}, {{out}}, {{scratch}});"
        )
        scratch = conv2d_scratch_bytes(cin, kh, kw)
        self.calls.append(Call(label, code, conv2d(**p, requant=self.requant).ravel(), scratch))

    def layout(self) -> tuple[list[int], int, int]:
        """Each output's offset (GAP canary bytes after it), the scratch's end (GAP canary
        bytes after it: every call's scratch ends there), the arena's size."""
        offs, at = [], 0
        for c in self.calls:
            offs.append(at)
            at += -(-(c.expected.size + GAP) // 4) * 4
        scratch_end = -(-(at + max(c.scratch for c in self.calls)) // 8) * 8
        return offs, scratch_end, scratch_end + GAP

    def model(self) -> CModel:
        """Layer 0 paints the arena with the canary; layer i + 1 is call i."""
        offs, scratch_end, arena = self.layout()
        layers = [("canaries", f"    for (int i = 0; i < {arena}; i++) arena[i] = {CANARY};")]
        for c, off in zip(self.calls, offs, strict=True):
            scratch = (scratch_end - c.scratch) // 8 * 8  # 8-byte aligned
            code = c.code.format(out=f"(arena + {off})", scratch=f"(arena + {scratch})")
            layers.append((c.label, "    " + code))
        # The input, which no call reads, after everything (the protocol wants one).
        return CModel(
            name=self.name, arena_bytes=arena + INPUT, input_offset=arena, input_bytes=INPUT,
            output_offset=0, output_bytes=arena, includes=[self.header],
            constants=[CArray("c_i8", np.frombuffer(bytes(self.pool8), np.int8)),
                       CArray("c_i32", np.asarray(self.pool32, np.int32))],
            layers=layers, rounding=self.rounding,
        )  # fmt: skip

    def check(self, output: bytes) -> list[str]:
        """The calls whose output differs or that wrote past it, and a scratch overrun."""
        got = np.frombuffer(output, np.int8)
        offs, scratch_end, _ = self.layout()
        bad = []
        for c, off in zip(self.calls, offs, strict=True):
            n = c.expected.size
            out, gap = got[off : off + n], got[off + n : off + n + GAP]
            if not np.array_equal(out, c.expected):
                bad.append(f"{c.label}: {np.count_nonzero(out != c.expected)} of {n} differ")
            elif np.any(gap != CANARY):
                bad.append(f"{c.label}: wrote past its output")
        if np.any(got[scratch_end : scratch_end + GAP] != CANARY):
            bad.append("a call wrote past its scratch")
        return bad


def add_fc_grid(suite: Suite, every: int = 1) -> Suite:
    """tests/test_fully_connected.py's problems (every ``every``-th): the grid of token
    counts, depths and row counts with a narrow and the full activation range, the
    requantization paths (fast form bounds, generic path, clamps), the random shapes up to
    69 x 69 x 69."""
    cases = []
    for k in fc_grid.GRID_DEPTHS:
        for n in fc_grid.GRID_TOKENS:
            for m in fc_grid.GRID_ROWS:
                for full in (False, True):
                    p = fc_grid.grid_case(n, k, m, full)
                    label = f"grid n={n} k={k} m={m} act={p['act_min']}..{p['act_max']}"
                    cases.append((label, p, n + k + m))
    for i, params in enumerate(fc_grid.REQUANT_PARAMS):
        for j, p in enumerate(fc_grid.requantization_cases(*params)):
            cases.append((f"requantization {params} #{j}", p, i + j))
    for seed in fc_grid.RANDOM_SEEDS:
        cases.append((f"random seed={seed}", fc_grid.random_case(seed), seed))
    for label, p, align in cases[::every]:
        suite.fc(label, p, align=align)
    return suite


def add_conv_grid(suite: Suite) -> Suite:
    """tests/test_conv_kernels.py's conv2d problems: random shapes, edge shapes, pointwise,
    patches straight into tiles (both activation ranges), large multipliers (the generic
    path), an input all at its zero point."""
    for seed in conv_grid.CONV_SEEDS:
        suite.conv(f"random seed={seed}", conv_grid.conv_case(seed), align=seed)
    for i, shape in enumerate(conv_grid.EDGE_SHAPES):
        suite.conv(f"edge {shape}", conv_grid.edge_case(shape), align=i)
    for seed in conv_grid.POINTWISE_SEEDS:
        suite.conv(f"pointwise seed={seed}", conv_grid.pointwise_case(seed), align=seed)
    for i, shape in enumerate(conv_grid.TILE_SHAPES):
        for full in (False, True):
            p = conv_grid.tile_case(shape, full)
            suite.conv(f"tiles {shape} full={full}", p, align=i + full)
    for seed in conv_grid.LARGE_MULTIPLIER_SEEDS:
        p = conv_grid.large_multiplier_case(seed, False)
        suite.conv(f"large multipliers seed={seed}", p, align=seed)
    suite.conv("input at its zero point", conv_grid.padding_case(False), align=1)
    return suite


def run_suite(target: Target, build: Callable[..., Firmware], suite: Suite) -> list[str]:
    """Build the suite's firmware, run it once, return what differs."""
    firmware = build(suite.model(), stack_size=DEFAULT_STACK)
    return suite.check(measure(target, firmware, bytes(INPUT)).output)


def test_fully_connected_assembly_matches_reference(
    target: Target, build_firmware: Callable[..., Firmware]
) -> None:
    suite = add_fc_grid(Suite("fc_asm", "tf_fully_connected_s8.h"))
    assert len(suite.calls) > 1700
    bad = run_suite(target, build_firmware, suite)
    assert not bad, f"{len(bad)} of {len(suite.calls)} calls: " + "; ".join(bad[:20])


def test_conv2d_assembly_matches_reference(
    target: Target, build_firmware: Callable[..., Firmware]
) -> None:
    suite = add_conv_grid(Suite("conv_asm", "tf_conv2d_s8.h"))
    bad = run_suite(target, build_firmware, suite)
    assert not bad, f"{len(bad)} of {len(suite.calls)} calls: " + "; ".join(bad[:20])


def test_tflite_rounding_assembly_matches_reference(
    target: Target, build_firmware: Callable[..., Firmware]
) -> None:
    """One firmware built with TFLite's rounding: the conv grid and every third FC problem
    (every tile tail, depth and requantization path still appears) against
    requantize_tflite. tf_conv2d_s8.h declares the FC kernel too."""
    suite = add_conv_grid(Suite("tflite_asm", "tf_conv2d_s8.h", "tflite"))
    add_fc_grid(suite, every=3)
    assert len(suite.calls) > 600
    bad = run_suite(target, build_firmware, suite)
    assert not bad, f"{len(bad)} of {len(suite.calls)} calls: " + "; ".join(bad[:20])
