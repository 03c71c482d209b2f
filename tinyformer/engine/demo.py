"""The demo payload: one int8 fully connected layer with seeded random parameters.

It is the smallest real model that exercises the whole path: numpy reference -> C kernel
-> firmware -> QEMU -> measurements. Default shape: 64 tokens x 96 -> 192 features, the
transformer MLP shape of DESIGN.md's CMSIS-NN baseline table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tinyformer.engine.cmodel import CArray, CModel
from tinyformer.engine.intmath import quantize_multipliers
from tinyformer.engine.ops.linear import fold_input_zero_point, fully_connected


@dataclass(frozen=True)
class DemoLayer:
    tokens: int
    in_features: int
    out_features: int
    weights: np.ndarray
    bias: np.ndarray
    input_zp: int
    output_zp: int
    multiplier: np.ndarray
    shift: np.ndarray

    @property
    def macs(self) -> int:
        return self.tokens * self.in_features * self.out_features

    def reference(self, x: np.ndarray) -> np.ndarray:
        return fully_connected(
            x, self.weights, self.bias, self.input_zp, self.output_zp, self.multiplier, self.shift
        )

    def random_input(self, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed + 1_000_003)
        return rng.integers(-128, 128, (self.tokens, self.in_features), dtype=np.int8)

    def to_c(self) -> CModel:
        n, k, m = self.tokens, self.in_features, self.out_features
        out_offset = (n * k + 15) // 16 * 16
        scratch_offset = (out_offset + n * m + 15) // 16 * 16
        scratch = (k // 4) * 4 * 8  # tf_fully_connected_s8_scratch_bytes(k)
        return CModel(
            name=f"demo_fc_{n}x{k}x{m}",
            arena_bytes=scratch_offset + scratch,
            input_offset=0,
            input_bytes=n * k,
            output_offset=out_offset,
            output_bytes=n * m,
            includes=["tf_fully_connected_s8.h"],
            constants=[
                CArray("w0", self.weights),
                CArray("b0", fold_input_zero_point(self.weights, self.bias, self.input_zp)),
                CArray("m0", self.multiplier),
                CArray("s0", self.shift),
            ],
            layers=[
                (
                    f"fully_connected {n}x{k} -> {m}",
                    f"    tf_fully_connected_s8(arena + 0, w0, b0, m0, s0, {self.output_zp}, -128, "
                    f"127, {n}, {k}, {m}, arena + {out_offset}, arena + {scratch_offset});",
                )
            ],
        )


def demo_layer(seed: int = 0, tokens: int = 64, in_features: int = 96, out_features: int = 192):
    """A seeded random layer whose outputs spread over the int8 range (not saturated)."""
    rng = np.random.default_rng(seed)
    # Scale so the accumulator's std (~sqrt(k) * 74 * 74) maps to ~40 output LSBs.
    scale = 40.0 / (np.sqrt(in_features) * 74.0 * 74.0)
    mult, shift = quantize_multipliers(scale * rng.uniform(0.7, 1.3, out_features))
    return DemoLayer(
        tokens=tokens,
        in_features=in_features,
        out_features=out_features,
        weights=rng.integers(-128, 128, (out_features, in_features), dtype=np.int8),
        bias=rng.integers(-20000, 20000, out_features, dtype=np.int32),
        input_zp=int(rng.integers(-20, 20)),
        output_zp=int(rng.integers(-10, 10)),
        multiplier=mult,
        shift=shift,
    )
