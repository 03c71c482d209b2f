"""Block-sparse linear and conv2d: references, scratch sizes and the C call pieces.

The integer semantics are exactly those of the dense ops with the decoded weights (pruned
blocks are zeros), so the references decode the block-rle blob
(:mod:`tinyformer.engine.sparse_format`) and call the dense ones. The C kernels
``firmware/kernels/tf_sparse_fully_connected_s8.{c,h}`` and ``tf_sparse_conv2d_s8.{c,h}``
take exactly the dense kernels' arguments with the weights array replaced by the whole blob
(header included) as one ``const uint8_t`` array in flash; they return 0, or -1 if the
blob's header does not match the shapes.

What the generator emits (bias folded as for the dense kernels, :func:`fold_input_zero_point`
/ :func:`fold_conv_bias` on the *decoded* weights)::

    static const uint8_t c_fc1_w[...] __attribute__((aligned(4))) = { <the blob> };
    ...
    tf_sparse_fully_connected_s8(arena + X, c_fc1_w, c_fc1_b, c_fc1_m, c_fc1_s,
                                 output_zp, act_min, act_max, n, k, m, arena + Y,
                                 arena + SCRATCH);

    tf_sparse_conv2d_s8(arena + X, in_h, in_w, in_c, c_conv1_w, out_c, k_h, k_w,
                        c_conv1_b, c_conv1_m, c_conv1_s, input_zp, output_zp, stride,
                        pad_top, pad_left, pad_bottom, pad_right, act_min, act_max,
                        arena + Y, arena + SCRATCH);

with ``#include "tf_sparse_fully_connected_s8.h"`` / ``"tf_sparse_conv2d_s8.h"`` (see
:data:`FC_HEADER`, :data:`CONV_HEADER`) and scratch of :func:`sparse_fc_scratch_bytes` /
:func:`sparse_conv2d_scratch_bytes` bytes (8-byte aligned, as the planner gives).
:func:`emit_weights` registers the blob with the code generator's context and returns the
argument; :func:`fc_call` / :func:`conv2d_call` write the whole statement.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tinyformer.engine.intmath import INT8_MAX, INT8_MIN
from tinyformer.engine.kernel_headers import SPARSE_TILE
from tinyformer.engine.ops.conv import Padding, conv2d
from tinyformer.engine.ops.linear import fully_connected
from tinyformer.engine.sparse_format import decode, header

FC_KERNEL = "tf_sparse_fully_connected_s8"
FC_HEADER = "tf_sparse_fully_connected_s8.h"
CONV_KERNEL = "tf_sparse_conv2d_s8"
CONV_HEADER = "tf_sparse_conv2d_s8.h"
TILE = SPARSE_TILE  # tokens (or output pixels) per tile


class _Ctx(Protocol):
    def const(self, name: str, values: np.ndarray) -> str: ...


# -- references -------------------------------------------------------------------------------


def sparse_fully_connected(
    x: np.ndarray,
    blob: bytes | np.ndarray,
    bias: np.ndarray | None,
    input_zp: int,
    output_zp: int,
    multiplier: np.ndarray,
    shift: np.ndarray,
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
) -> np.ndarray:
    """x [n, k] int8, blob of [m, k] weights -> [n, m] int8 (= fully_connected, decoded)."""
    w = decode(blob)
    return fully_connected(x, w, bias, input_zp, output_zp, multiplier, shift, act_min, act_max)


def sparse_conv2d(
    x: np.ndarray,
    blob: bytes | np.ndarray,
    k_h: int,
    k_w: int,
    bias: np.ndarray | None,
    input_zp: int,
    output_zp: int,
    multiplier: np.ndarray,
    shift: np.ndarray,
    stride: int = 1,
    padding: Padding = (0, 0, 0, 0),
    act_min: int = INT8_MIN,
    act_max: int = INT8_MAX,
) -> np.ndarray:
    """x [H][W][Cin], blob of [Cout][kh*kw*Cin] weights -> [Ho][Wo][Cout] (= conv2d)."""
    w = decode(blob)
    cin = x.shape[2]
    if w.shape[1] != k_h * k_w * cin:
        raise ValueError(f"blob has {w.shape[1]} columns, {k_h}x{k_w}x{cin} expected")
    w = w.reshape(w.shape[0], k_h, k_w, cin)
    return conv2d(
        x, w, bias, input_zp, output_zp, multiplier, shift, stride, padding, act_min, act_max
    )


# -- scratch ----------------------------------------------------------------------------------


def padded_k(k: int, block: int) -> int:
    """tf_sparse_fc_s8_padded_k: k rounded up to max(B, 4)."""
    q = max(block, 4)
    return -(-k // q) * q


def sparse_fc_scratch_bytes(k: int, m: int, block: int) -> int:
    """tf_sparse_fully_connected_s8_scratch_bytes(k, m, B) = 20 m + 8 + 16 padded_k(k, B).

    The row table (2 words, then 5 per row: requantization, next bias, row kind) and one
    tile of 8 tokens widened to int16.
    """
    return 20 * m + 8 + TILE * 2 * padded_k(k, block)


def sparse_conv2d_scratch_bytes(in_c: int, k_h: int, k_w: int, out_c: int, block: int) -> int:
    """tf_sparse_conv2d_s8_scratch_bytes: the FC scratch for depth kh*kw*Cin plus 8 patches.

    = sparse_fc_scratch_bytes(D, out_c, B) + 8 * round_up(D, 4), D = k_h * k_w * in_c. The
    pointwise fast path (1x1, stride 1, no padding) uses only the FC part.
    """
    depth = k_h * k_w * in_c
    return sparse_fc_scratch_bytes(depth, out_c, block) + TILE * (-(-depth // 4) * 4)


def scratch_bytes_of(
    blob: bytes | np.ndarray, k_h: int | None = None, k_w: int | None = None
) -> int:
    """Scratch for a blob's layer: a linear without taps, a conv (any) with k_h, k_w given."""
    h = header(_as_bytes(blob))
    if k_h is None or k_w is None:
        return sparse_fc_scratch_bytes(h.cols, h.rows, h.block)
    return sparse_conv2d_scratch_bytes(h.cols // (k_h * k_w), k_h, k_w, h.rows, h.block)


# -- C pieces ---------------------------------------------------------------------------------


def c_arrays(blob: bytes | np.ndarray) -> dict[str, np.ndarray]:
    """The const arrays the kernels take: {"weights": the whole blob as uint8}."""
    data = _as_bytes(blob)
    header(data)  # refuse a damaged blob before it reaches flash
    return {"weights": np.frombuffer(data, np.uint8).copy()}


def emit_weights(ctx: _Ctx, name: str, blob: bytes | np.ndarray) -> str:
    """Register the blob as a const array with the generator; the kernel's weights argument."""
    return ctx.const(name, c_arrays(blob)["weights"])


def fc_call(
    x: str, weights: str, bias: str, multiplier: str, shift: str, output_zp: int,
    act_min: int, act_max: int, n: int, k: int, m: int, out: str, scratch: str,
) -> str:  # fmt: skip
    """The C statement of one sparse linear layer (arguments are C expressions)."""
    return (
        f"    {FC_KERNEL}({x}, {weights}, {bias}, {multiplier}, {shift}, {output_zp}, "
        f"{act_min}, {act_max}, {n}, {k}, {m}, {out}, {scratch});"
    )


def conv2d_call(
    x: str, in_h: int, in_w: int, in_c: int, weights: str, out_c: int, k_h: int, k_w: int,
    bias: str, multiplier: str, shift: str, input_zp: int, output_zp: int, stride: int,
    padding: Padding, act_min: int, act_max: int, out: str, scratch: str,
) -> str:  # fmt: skip
    """The C statement of one sparse conv2d layer (arguments are C expressions)."""
    pads = ", ".join(str(int(p)) for p in padding)
    return (
        f"    {CONV_KERNEL}({x}, {in_h}, {in_w}, {in_c}, {weights}, {out_c}, {k_h}, {k_w}, "
        f"{bias}, {multiplier}, {shift}, {input_zp}, {output_zp}, {stride}, {pads}, "
        f"{act_min}, {act_max}, {out}, {scratch});"
    )


def _as_bytes(blob: bytes | np.ndarray) -> bytes:
    return blob.tobytes() if isinstance(blob, np.ndarray) else bytes(blob)
