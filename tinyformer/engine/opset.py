"""What each IR op means (its numpy reference) and how it lowers to C (its kernel call).

One entry per op keeps the two side by side, so the interpreter and the code generator
cannot drift apart. Emitters get pointer expressions for their tensors and return the C
statements of one layer; constants they need are registered with ``ctx.const``.

Ops, their inputs and attributes (activations int8 NHWC without batch: [H][W][C], [T][C]):

    conv2d            x, w [Cout][kh][kw][Cin], b int32   input_zp output_zp multiplier[]
                                                           shift[] stride padding[t,l,b,r]
                                                           act_min act_max
    depthwise_conv2d  x, w [kh][kw][C], b int32           as conv2d
    linear            x [..][K], w [M][K], b int32         input_zp output_zp multiplier[]
                                                           shift[] act_min act_max
    add               x1, x2                               add_params(...) act_min act_max
    layernorm         x [T][D], gamma, beta int32 [D]      eps output_zp
    softmax           x [..][N], exp_table int32 [256]     (output scale 1/256, zp -128)
    lut               x, table int8 [256]                  (GELU and other pointwise maps)
    matmul_qk         q [T][H*d], k [T][H*d] -> [H][T][T]  heads q_zp k_zp multiplier shift
                                                           output_zp
    matmul_av         attn [H][T][T], v [T][H*d]           heads attn_zp v_zp multiplier
                                                           shift output_zp
    avgpool           x [H][W][C]                          kernel[kh,kw] stride padding
                                                           act_min act_max
    maxpool           x [H][W][C]                          as avgpool
    global_avgpool    x [H][W][C] or [T][C] -> [C]         act_min act_max
    mean              x [H][W][C] -> [C]                   input_zp output_zp multiplier shift
                                                           (TFLite's MEAN: requantized sum)
    transpose         x                                    shape[4] perm[4] inner
    reshape           x                                    (same bytes, new shape)
    sub, add_broadcast, x1, x2 (broadcasting, <= 4-D;    as add (TFLite's SUB, ADD,
    squared_difference
                      either may be an int8 constant)  SQUARED_DIFFERENCE)
    mul               x1, x2 (as sub)                      input1_zp input2_zp output_zp
                                                           multiplier shift act_min act_max
    concat            x1, x2                               axis (one quantization: bytes)

A graph imported from TensorFlow Lite has ``meta["rounding"] == "tflite"``: its requantizations
round as TFLite Micro's do and its softmax is TFLite's (``ops/tflm.py``); the firmware is then
built with ``TF_ROUNDING_TFLITE`` (:func:`rounding`).

conv2d and linear weights may be stored block-sparse (``Tensor.encoding == "block-rle"``);
they then lower to the block-sparse kernels, with the same integer semantics.

Each entry also declares what a node of the op may hold: its operands (kind, dtype, which
are optional or may be sparse), its attributes (type and range) and the output shape it
computes from its inputs. ``tinyformer.engine.validate`` checks every node against them, on
every load and save, so adding an op is still one entry.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass
from typing import Any, Protocol

import numpy as np

from tinyformer.engine.graph import Graph, Node
from tinyformer.engine.intmath import (
    INT8_MAX,
    INT8_MIN,
    INT32_MAX,
    MAX_SHIFT,
    MIN_SHIFT,
    requantize,
    requantize_tflite,
    smlal_requant_table,
    tflite_requant_table,
)
from tinyformer.engine.ops.conv import (
    conv2d,
    conv2d_scratch_bytes,
    depthwise_bias,
    depthwise_conv2d,
    depthwise_weights_s16,
    fold_conv_bias,
    output_size,
)
from tinyformer.engine.ops.elementwise import add
from tinyformer.engine.ops.gelu import lut
from tinyformer.engine.ops.layout import transpose_s8
from tinyformer.engine.ops.linear import fc_scratch_bytes, fold_input_zero_point, fully_connected
from tinyformer.engine.ops.matmul import (
    MAX_REDUCTION,
    batch_matmul_av,
    batch_matmul_qk,
    bmm_scratch_bytes,
)
from tinyformer.engine.ops.norm import G_LIMIT, MAX_D, layernorm, layernorm_affine
from tinyformer.engine.ops.pool import avgpool, global_avgpool, maxpool
from tinyformer.engine.ops.softmax import softmax
from tinyformer.engine.ops.tflm import (
    ADDSUB_MODES,
    SOFTMAX_MAX_ROW,
    add_sub,
    broadcast_strides,
    concat,
    mean,
    mul,
    softmax_tflite,
)
from tinyformer.engine.opspec import Attr, Int, Invalid, OneOf, Operand, int_list, optional
from tinyformer.engine.sparse_format import BLOCKS


class EmitContext(Protocol):
    def const(self, name: str, values: np.ndarray) -> str: ...
    def ptr(self, tensor: str) -> str: ...
    def scratch(self, node: Node) -> str: ...


Reference = Callable[[Node, Graph, list[np.ndarray]], list[np.ndarray]]
Emit = Callable[[Node, Graph, EmitContext], tuple[list[str], str]]
# The output's shape from the inputs' shapes and the attrs; raises opspec.Invalid when they
# do not fit together. Called only on nodes whose operands and attrs passed their specs.
OutputShape = Callable[[Node, Graph], tuple[int, ...]]


@dataclass(frozen=True)
class OpDef:
    reference: Reference
    emit: Emit
    scratch_bytes: Callable[[Node, Graph], int] = lambda node, graph: 0
    inplace: int | None = None  # input index the output may overwrite
    _: KW_ONLY
    operands: tuple[Operand, ...]  # the inputs, in order; every op has one output
    attrs: Mapping[str, Attr]
    output_shape: OutputShape


ROUNDINGS = ("single", "tflite")  # graph.meta["rounding"]; absent means "single"


def rounding(graph: Graph) -> str:
    """The graph's integer semantics: the engine's single rounding or TFLite Micro's."""
    return str(graph.meta.get("rounding", "single"))


def _requant(graph: Graph) -> Callable[..., np.ndarray]:
    return requantize_tflite if rounding(graph) == "tflite" else requantize


def is_sparse(graph: Graph, name: str) -> bool:
    return graph.tensors[name].encoding == "block-rle"


def weights_of(graph: Graph, name: str) -> np.ndarray:
    """A weight tensor's dense int8 values, decoding block-sparse storage."""
    t = graph.tensors[name]
    if t.encoding is None:
        return t.const
    if t.encoding == "block-rle":
        from tinyformer.engine.sparse_format import decode

        return decode(t.const.tobytes()).reshape(t.shape)
    raise ValueError(f"tensor {name!r} has unknown encoding {t.encoding!r}")


def _shape(graph: Graph, name: str) -> tuple[int, ...]:
    return tuple(graph.tensors[name].shape)


def _bias(graph: Graph, node: Node) -> np.ndarray | None:
    return graph.tensors[node.inputs[2]].data if len(node.inputs) > 2 else None


def _act(a: dict[str, Any]) -> tuple[int, int]:
    return int(a.get("act_min", -128)), int(a.get("act_max", 127))


def _padding(a: dict[str, Any]) -> tuple[int, int, int, int]:
    t, left, b, r = a.get("padding", (0, 0, 0, 0))
    return int(t), int(left), int(b), int(r)


def _i32(values: Any) -> np.ndarray:
    return np.asarray(values, np.int32).ravel()


def _requant_args(node: Node, ctx: EmitContext) -> str:
    a = node.attrs
    return (
        f"{ctx.const(node.name + '_m', _i32(a['multiplier']))}, "
        f"{ctx.const(node.name + '_s', _i32(a['shift']))}"
    )


# -- what a node may hold: checked on load by tinyformer.engine.validate ----------------------

_ZP = Int(INT8_MIN, INT8_MAX)
_Q31 = Int(0, INT32_MAX)  # a requantization multiplier: [2**30, 2**31), 0 for a dead channel
_SHIFT = Int(MIN_SHIFT, MAX_SHIFT)
_COUNT = Int(1, INT32_MAX)  # strides, sizes: int32 arguments of the kernels
_X = Operand("x")
_WEIGHTS = Operand("weights", constant=True, sparse=True)
_BIAS = Operand("bias", constant=True, dtype="int32", optional=True)
_ACT = {"act_min": optional(_ZP), "act_max": optional(_ZP)}
_WEIGHTED = {
    "input_zp": Attr(_ZP),
    "output_zp": Attr(_ZP),
    "multiplier": Attr(_Q31.list()),
    "shift": Attr(_SHIFT.list()),
    **_ACT,
}
_BLOCK_HINT = {"block": optional(OneOf(BLOCKS))}  # the block size the weights were pruned with
_WINDOW = {"stride": optional(_COUNT), "padding": optional(Int(0, INT32_MAX, 4))}


def _operand(node: Node, i: int) -> str:
    return f"input {i} {node.inputs[i]!r}"


def _input_shape(node: Node, graph: Graph, i: int, rank: int | None = None) -> tuple[int, ...]:
    shape = _shape(graph, node.inputs[i])
    if rank is not None and len(shape) != rank:
        raise Invalid(_operand(node, i), f"must be {rank}-D, got shape {list(shape)}")
    return shape


def _expect_shape(node: Node, graph: Graph, i: int, want: tuple[int, ...]) -> None:
    got = _shape(graph, node.inputs[i])
    if got != want:
        raise Invalid(_operand(node, i), f"has shape {list(got)}, the op needs {list(want)}")


def _check_act(node: Node) -> None:
    lo, hi = _act(node.attrs)
    if lo > hi:
        raise Invalid("attrs.act_min", f"{lo} is above act_max {hi}")


def _check_requant(node: Node, graph: Graph, channels: int) -> None:
    """Per output channel: a multiplier and a shift (the C kernels read one per channel), and
    the optional bias."""
    for key in ("multiplier", "shift"):
        n = len(node.attrs[key])
        if n != channels:
            raise Invalid(f"attrs.{key}", f"has {n} values for {channels} output channels")
    if len(node.inputs) > 2:
        _expect_shape(node, graph, 2, (channels,))
    _check_act(node)
    _check_accumulator(node, graph, channels)


def _check_accumulator(node: Node, graph: Graph, channels: int) -> None:
    """No input can overflow the int32 accumulator of a linear / conv: per output channel,
    |bias| + max|x - input_zp| * sum|w| <= 2**31 - 1. The C kernels add in int32 and wrap
    (SMLAD), so a final sum outside int32 would silently differ from the reference. The
    weights are only read when the data-free bound (every |w| = 128) does not already prove
    it: up to 65,000 weights per output with a small bias (the CIFAR-10 spaces' widest: 640).
    It also bounds the input zero point folded into the bias (|input_zp| <= the span)."""
    zp = int(node.attrs["input_zp"])
    span = max(127 - zp, zp + 128)  # the largest |x - input_zp| of an int8 x
    bias = _bias(graph, node)
    b = np.zeros(channels, np.int64) if bias is None else np.abs(bias.astype(np.int64))
    taps = math.prod(_shape(graph, node.inputs[1])) // channels  # weights per output
    if int(b.max()) + span * 128 * taps <= INT32_MAX:
        return
    w = np.abs(weights_of(graph, node.inputs[1]).astype(np.int64))
    per_out = (
        w.reshape(-1, channels).sum(0)
        if node.op == "depthwise_conv2d"
        else w.reshape(channels, -1).sum(1)
    )
    worst = b + span * per_out
    j = int(worst.argmax())
    if worst[j] > INT32_MAX:
        raise Invalid(
            _operand(node, 2 if bias is not None else 1),
            f"output channel {j}: the int32 accumulator reaches {int(worst[j]):,} for some "
            f"input (|bias| {int(b[j]):,} + {span} x sum|w| {int(per_out[j]):,}), over 2**31 - 1",
        )


def _same_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    return _shape(graph, node.inputs[0])


def _same_elements(node: Node, graph: Graph, elements: int) -> tuple[int, ...]:
    """A layout op's output: any shape holding the op's ``elements`` bytes."""
    out = _shape(graph, node.outputs[0])
    if math.prod(out) != elements:
        raise Invalid(
            f"output {node.outputs[0]!r}",
            f"shape {list(out)} holds {math.prod(out)} values, the op makes {elements}",
        )
    return out


# -- linear -----------------------------------------------------------------------------------


def _linear_dims(node: Node, graph: Graph) -> tuple[int, int, int]:
    x = _shape(graph, node.inputs[0])
    return int(np.prod(x[:-1])), x[-1], _shape(graph, node.outputs[0])[-1]


def _call(kernel: str, *args: object) -> tuple[list[str], str]:
    """The header and the C statement of one call of ``kernel`` (declared in ``kernel``.h),
    its arguments C expressions or numbers: what most emitters return."""
    return [f"{kernel}.h"], f"    {kernel}({', '.join(str(arg) for arg in args)});"


def _linear_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    x = ins[0].reshape(-1, ins[0].shape[-1])
    out = fully_connected(
        x,
        weights_of(graph, node.inputs[1]),
        _bias(graph, node),
        a["input_zp"],
        a["output_zp"],
        np.asarray(a["multiplier"]),
        np.asarray(a["shift"]),
        *_act(a),
        requant=_requant(graph),
    )
    return [out.reshape(_shape(graph, node.outputs[0]))]


def _linear_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    x = _shape(graph, node.inputs[0])
    m, k = _input_shape(node, graph, 1, rank=2)
    if x[-1] != k:
        raise Invalid(_operand(node, 0), f"has {x[-1]} features, the weights take {k}")
    _check_requant(node, graph, m)
    return (*x[:-1], m)


def _linear_scratch(node: Node, graph: Graph) -> int:
    _, k, _ = _linear_dims(node, graph)
    if is_sparse(graph, node.inputs[1]):
        from tinyformer.engine.ops import sparse

        return sparse.scratch_bytes_of(graph.tensors[node.inputs[1]].const)
    return fc_scratch_bytes(k)


def _linear_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    n, k, m = _linear_dims(node, graph)
    w = weights_of(graph, node.inputs[1])
    folded = fold_input_zero_point(w, _bias(graph, node), a["input_zp"])
    lo, hi = _act(a)
    tail = (
        f"{ctx.const(node.name + '_b', folded)}, {_requant_args(node, ctx)}, "
        f"{a['output_zp']}, {lo}, {hi}, {n}, {k}, {m}, {ctx.ptr(node.outputs[0])}, "
        f"{ctx.scratch(node)}"
    )
    x = ctx.ptr(node.inputs[0])
    if is_sparse(graph, node.inputs[1]):
        from tinyformer.engine.ops import sparse

        weights = sparse.emit_weights(ctx, node.name + "_w", graph.tensors[node.inputs[1]].const)
        return [sparse.FC_HEADER], f"    {sparse.FC_KERNEL}({x}, {weights}, {tail});"
    code = f"    tf_fully_connected_s8({x}, {ctx.const(node.name + '_w', w)}, {tail});"
    return ["tf_fully_connected_s8.h"], code


# -- convolutions -----------------------------------------------------------------------------


def _conv_geometry(node: Node, graph: Graph) -> tuple[int, int, int, int, int, int]:
    h, w, c = _shape(graph, node.inputs[0])
    wshape = _shape(graph, node.inputs[1])
    kh, kw = (wshape[1], wshape[2]) if node.op == "conv2d" else (wshape[0], wshape[1])
    out_c = _shape(graph, node.outputs[0])[-1]
    return h, w, c, kh, kw, out_c


def _conv_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    fn = conv2d if node.op == "conv2d" else depthwise_conv2d
    out = fn(
        ins[0],
        weights_of(graph, node.inputs[1]),
        _bias(graph, node),
        a["input_zp"],
        a["output_zp"],
        np.asarray(a["multiplier"]),
        np.asarray(a["shift"]),
        int(a.get("stride", 1)),
        _padding(a),
        *_act(a),
        requant=_requant(graph),
    )
    return [out]


def _windows(node: Node, size: int, k: int, before: int, after: int, axis: str) -> int:
    """Output length along one axis. Padding below the kernel size (TFLite's SAME and VALID)
    keeps a real pixel in every window: average pooling divides by their count."""
    if max(before, after) >= k:
        raise Invalid("attrs.padding", f"{before}, {after} on the {axis}: not below the kernel {k}")
    if size + before + after < k:
        raise Invalid(_operand(node, 0), f"{axis} {size} + padding is below the kernel {k}")
    return output_size(size, k, int(node.attrs.get("stride", 1)), before, after)


def _pooled(node: Node, graph: Graph, k_h: int, k_w: int) -> tuple[int, int]:
    """(Ho, Wo) of a k_h x k_w window sliding over input 0, [H][W][C]."""
    h, w, _ = _input_shape(node, graph, 0, rank=3)
    top, left, bottom, right = _padding(node.attrs)
    return (
        _windows(node, h, k_h, top, bottom, "height"),
        _windows(node, w, k_w, left, right, "width"),
    )


def _conv_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    c = _input_shape(node, graph, 0, rank=3)[2]
    if node.op == "conv2d":
        out_c, k_h, k_w, in_c = _input_shape(node, graph, 1, rank=4)
    else:
        k_h, k_w, in_c = _input_shape(node, graph, 1, rank=3)
        out_c = in_c
    if in_c != c:
        raise Invalid(_operand(node, 1), f"takes {in_c} channels, the input has {c}")
    _check_requant(node, graph, out_c)
    return (*_pooled(node, graph, k_h, k_w), out_c)


def _conv_scratch(node: Node, graph: Graph) -> int:
    _, _, c, kh, kw, _ = _conv_geometry(node, graph)
    if is_sparse(graph, node.inputs[1]):
        from tinyformer.engine.ops import sparse

        return sparse.scratch_bytes_of(graph.tensors[node.inputs[1]].const, kh, kw)
    return conv2d_scratch_bytes(c, kh, kw)


def _conv_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    h, w, c, kh, kw, out_c = _conv_geometry(node, graph)
    weights = weights_of(graph, node.inputs[1])
    pads = ", ".join(str(p) for p in _padding(a))
    lo, hi = _act(a)
    x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0])
    rest = f"{a['input_zp']}, {a['output_zp']}, {int(a.get('stride', 1))}, {pads}, {lo}, {hi}, {y}"
    if node.op == "depthwise_conv2d":
        bias_v = depthwise_bias(weights, _bias(graph, node))
        bias = ctx.const(node.name + "_b", bias_v)
        wc = ctx.const(node.name + "_w", depthwise_weights_s16(weights))
        if rounding(graph) == "single":
            table = smlal_requant_table(a["multiplier"], a["shift"], int(a["output_zp"]))
        else:  # |acc| <= |bias| + taps * 255 * 128
            bound = int(np.abs(np.asarray(bias_v, np.int64)).max()) + kh * kw * 255 * 128
            table = tflite_requant_table(a["multiplier"], a["shift"], int(a["output_zp"]), bound)
        rq = (
            f"{_requant_args(node, ctx)}, NULL"
            if table is None
            else f"NULL, NULL, {ctx.const(node.name + '_rq', table.ravel())}"
        )
        code = (
            f"    tf_depthwise_conv2d_s8({x}, {h}, {w}, {c}, {wc}, {kh}, {kw}, {bias}, {rq}, "
            f"{rest});"
        )
        return ["tf_depthwise_conv2d_s8.h"], code
    rq = f"{_requant_args(node, ctx)}, {rest}"
    bias = ctx.const(node.name + "_b", fold_conv_bias(weights, _bias(graph, node), a["input_zp"]))
    if is_sparse(graph, node.inputs[1]):
        from tinyformer.engine.ops import sparse

        wc = sparse.emit_weights(ctx, node.name + "_w", graph.tensors[node.inputs[1]].const)
        kernel, header = sparse.CONV_KERNEL, sparse.CONV_HEADER
    else:
        wc = ctx.const(node.name + "_w", weights)
        kernel, header = "tf_conv2d_s8", "tf_conv2d_s8.h"
    code = (
        f"    {kernel}({x}, {h}, {w}, {c}, {wc}, {out_c}, {kh}, {kw}, {bias}, {rq}, "
        f"{ctx.scratch(node)});"
    )
    return [header], code


# -- elementwise, normalisation, attention ----------------------------------------------------

_ADD_KEYS = (
    "input1_zp",
    "input1_multiplier",
    "input1_shift",
    "input2_zp",
    "input2_multiplier",
    "input2_shift",
    "output_zp",
    "output_multiplier",
    "output_shift",
)


def _add_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    lo, hi = _act(a)
    params = {key: int(a[key]) for key in _ADD_KEYS}
    return [
        add(ins[0], ins[1], **params, act_min=lo, act_max=hi, left_shift=a["left_shift"],
            requant=_requant(graph))
    ]  # fmt: skip


def _add_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    _expect_shape(node, graph, 1, _shape(graph, node.inputs[0]))
    _check_act(node)
    return _same_shape(node, graph)


def _add_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    x1, x2 = (ctx.ptr(t) for t in node.inputs)
    n = graph.tensors[node.outputs[0]].nbytes
    params = ", ".join(str(int(a[key])) for key in _ADD_KEYS)
    lo, hi = _act(a)
    y = ctx.ptr(node.outputs[0])
    return _call("tf_add_s8", x1, x2, n, params, lo, hi, int(a["left_shift"]), y)


def _layernorm_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    x = ins[0].reshape(-1, ins[0].shape[-1])
    out = layernorm(x, ins[1], ins[2], int(a["eps"]), int(a["output_zp"]))
    return [out.reshape(ins[0].shape)]


def _layernorm_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    d = _shape(graph, node.inputs[0])[-1]
    if d > MAX_D:
        raise Invalid(_operand(node, 0), f"depth {d} is above the kernel's {MAX_D}")
    for i in (1, 2):
        _expect_shape(node, graph, i, (d,))
        if np.any(np.abs(graph.tensors[node.inputs[i]].const.astype(np.int64)) > G_LIMIT):
            raise Invalid(_operand(node, i), f"has values beyond +-{G_LIMIT}")
    return _same_shape(node, graph)


def _layernorm_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    shape = _shape(graph, node.inputs[0])
    t, d = int(np.prod(shape[:-1])), shape[-1]
    gamma, beta = (graph.tensors[name].const for name in node.inputs[1:3])
    affine = ctx.const(
        node.name + "_affine", layernorm_affine(gamma, beta, int(a["output_zp"])).ravel()
    )
    x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0])
    return _call("tf_layernorm_s8", x, affine, int(a["eps"]), t, d, y)


def _softmax_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [(softmax_tflite if rounding(graph) == "tflite" else softmax)(ins[0], ins[1])]


def _softmax_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    _expect_shape(node, graph, 1, (256,))
    table = graph.tensors[node.inputs[1]].const.astype(np.int64)
    n = _shape(graph, node.inputs[0])[-1]
    if rounding(graph) == "tflite":  # Q0.31 exps; the shift by the sum's size within 31
        longest = SOFTMAX_MAX_ROW
        if table.min() < 0 or n > longest:
            raise Invalid(_operand(node, 1), f"entries must be >= 0, rows <= {longest} long")
        return _same_shape(node, graph)
    # A row's sum of table entries must be a positive int32 (one reciprocal per row).
    if table.min() < 0 or table[0] < 1 or n * int(table.max()) > INT32_MAX:
        raise Invalid(_operand(node, 1), f"entries must be >= 0, [0] >= 1, {n} x max <= 2^31 - 1")
    return _same_shape(node, graph)


def _softmax_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    shape = _shape(graph, node.inputs[0])
    table = ctx.const(node.name + "_exp", _i32(graph.tensors[node.inputs[1]].data))
    x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0])
    return _call("tf_softmax_s8", x, table, int(np.prod(shape[:-1])), shape[-1], y)


def _lut_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [lut(ins[0], ins[1])]


def _lut_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    _expect_shape(node, graph, 1, (256,))
    return _same_shape(node, graph)


def _lut_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    table = ctx.const(node.name + "_lut", np.asarray(graph.tensors[node.inputs[1]].data, np.int8))
    n = graph.tensors[node.inputs[0]].nbytes
    return _call("tf_lut_s8", ctx.ptr(node.inputs[0]), table, n, ctx.ptr(node.outputs[0]))


def _heads_dims(node: Node, graph: Graph) -> tuple[int, int, int, int]:
    """(heads, t_q, t_k, d) of a matmul node."""
    a = node.attrs
    heads = int(a["heads"])
    if node.op == "matmul_qk":
        (t_q, hd), (t_k, _) = _shape(graph, node.inputs[0]), _shape(graph, node.inputs[1])
    else:
        (_, t_q, t_k), (_, hd) = _shape(graph, node.inputs[0]), _shape(graph, node.inputs[1])
    return heads, t_q, t_k, hd // heads


def _qk_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    return [
        batch_matmul_qk(
            ins[0],
            ins[1],
            a["q_zp"],
            a["k_zp"],
            int(a["heads"]),
            int(a["multiplier"]),
            int(a["shift"]),
            a["output_zp"],
            _requant(graph),
        )
    ]


def _av_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    return [
        batch_matmul_av(
            ins[0],
            ins[1],
            a["attn_zp"],
            a["v_zp"],
            int(a["multiplier"]),
            int(a["shift"]),
            a["output_zp"],
        )
    ]


def _split_heads(node: Node, graph: Graph, i: int) -> tuple[int, int]:
    """(tokens, head dim) of input ``i``, [T][heads * d]."""
    t, width = _input_shape(node, graph, i, rank=2)
    heads = int(node.attrs["heads"])
    if width % heads:
        raise Invalid("attrs.heads", f"{heads} does not divide the width {width} of input {i}")
    return t, width // heads


def _qk_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    t_q, d = _split_heads(node, graph, 0)
    t_k, d_k = _split_heads(node, graph, 1)
    if d_k != d:
        raise Invalid(_operand(node, 1), f"has head dim {d_k}, q has {d}")
    if d > MAX_REDUCTION:
        raise Invalid("attrs.heads", f"head dim {d} is above {MAX_REDUCTION} (int32 sums)")
    return (int(node.attrs["heads"]), t_q, t_k)


def _av_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    heads, t_q, t_k = _input_shape(node, graph, 0, rank=3)
    if heads != int(node.attrs["heads"]):
        raise Invalid("attrs.heads", f"{node.attrs['heads']}, the attention has {heads} heads")
    t_v, d = _split_heads(node, graph, 1)
    if t_v != t_k:
        raise Invalid(_operand(node, 1), f"has {t_v} tokens, the attention {t_k}")
    if t_k > MAX_REDUCTION:
        raise Invalid(_operand(node, 0), f"{t_k} tokens, above {MAX_REDUCTION} (int32 sums)")
    return (t_q, heads * d)


def _matmul_scratch(node: Node, graph: Graph) -> int:
    _, _, t_k, d = _heads_dims(node, graph)
    return bmm_scratch_bytes(d, t_k) if node.op == "matmul_qk" else bmm_scratch_bytes(t_k, d)


def _matmul_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    heads, t_q, t_k, d = _heads_dims(node, graph)
    a0, a1 = (ctx.ptr(t) for t in node.inputs)
    rq = f"{int(a['multiplier'])}, {int(a['shift'])}, {int(a['output_zp'])}"
    dims = f"{heads}, {t_q}, {t_k}, {d}"
    y = ctx.ptr(node.outputs[0])
    hd, scratch = heads * d, ctx.scratch(node)
    if node.op == "matmul_qk":
        q_zp, k_zp = int(a["q_zp"]), int(a["k_zp"])
        _, code = _call("tf_batch_matmul_qk_s8", a0, hd, q_zp, a1, hd, k_zp, dims, rq, y, scratch)
    else:
        attn_zp, v_zp = int(a["attn_zp"]), int(a["v_zp"])
        _, code = _call(
            "tf_batch_matmul_av_s8", a0, attn_zp, a1, hd, v_zp, dims, rq, y, hd, scratch
        )
    return ["tf_batch_matmul_s8.h"], code


# -- pooling and layout -----------------------------------------------------------------------


def _avgpool_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    kh, kw = a["kernel"]
    fn = avgpool if node.op == "avgpool" else maxpool
    return [fn(ins[0], int(kh), int(kw), int(a["stride"]), _padding(a), *_act(a))]


def _avgpool_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    k_h, k_w = node.attrs["kernel"]
    _check_act(node)
    return (*_pooled(node, graph, int(k_h), int(k_w)), _shape(graph, node.inputs[0])[2])


def _avgpool_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    h, w, c = _shape(graph, node.inputs[0])
    kh, kw = a["kernel"]
    pads = ", ".join(str(p) for p in _padding(a))
    lo, hi = _act(a)
    x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0])
    # tf_avgpool_s8, tf_maxpool_s8: the same arguments
    return _call(f"tf_{node.op}_s8", x, h, w, c, kh, kw, int(a["stride"]), pads, lo, hi, y)


def _gap_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [global_avgpool(ins[0], *_act(node.attrs))]


def _gap_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    _check_act(node)
    return (_shape(graph, node.inputs[0])[-1],)


def _gap_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    shape = _shape(graph, node.inputs[0])
    lo, hi = _act(node.attrs)
    x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0])
    return _call("tf_global_avgpool_s8", x, int(np.prod(shape[:-1])), shape[-1], lo, hi, y)


def _mean_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    zp_in, zp_out, m, s = (int(a[key]) for key in ("input_zp", "output_zp", "multiplier", "shift"))
    return [mean(ins[0], zp_in, zp_out, m, s, requant=_requant(graph))]


def _mean_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    h, w, c = _input_shape(node, graph, 0, rank=3)
    if h * w * 255 > INT32_MAX:
        raise Invalid(_operand(node, 0), f"{h} x {w} pixels overflow the int32 sum")
    return (c,)


def _mean_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    h, w, c = _shape(graph, node.inputs[0])
    params = ", ".join(str(int(a[key])) for key in ("input_zp", "output_zp", "multiplier", "shift"))
    return _call("tf_mean_s8", ctx.ptr(node.inputs[0]), h * w, c, params, ctx.ptr(node.outputs[0]))


def _transpose_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    out = transpose_s8(ins[0], tuple(a["shape"]), tuple(a["perm"]), int(a["inner"]))
    return [out.reshape(_shape(graph, node.outputs[0]))]


def _transpose_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    a = node.attrs
    if sorted(int_list("attrs.perm", a["perm"])) != [0, 1, 2, 3]:
        raise Invalid("attrs.perm", f"{list(a['perm'])} is not a permutation of 0..3")
    blocks = math.prod(int_list("attrs.shape", a["shape"])) * int(a["inner"])
    x = math.prod(_shape(graph, node.inputs[0]))
    if blocks != x:
        raise Invalid("attrs.shape", f"x inner holds {blocks} values, the input {x}")
    return _same_elements(node, graph, blocks)


def _transpose_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    shape = ctx.const(node.name + "_shape", _i32(a["shape"]))
    perm = ctx.const(node.name + "_perm", _i32(a["perm"]))
    x, y = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0])
    return _call("tf_transpose_s8", x, shape, perm, int(a["inner"]), y)


def _reshape_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [ins[0].reshape(_shape(graph, node.outputs[0]))]


def _reshape_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    return _same_elements(node, graph, math.prod(_shape(graph, node.inputs[0])))


def _reshape_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    src, dst = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0])
    if src == dst:  # the planner gave the output the input's buffer: nothing to move
        return [], "    /* in place */"
    n = graph.tensors[node.inputs[0]].nbytes
    return ["string.h"], f"    memmove({dst}, {src}, {n});"


# -- TFLite's broadcasting SUB and MUL, CONCATENATION -----------------------------------------


def _addsub_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    params = {key: int(a[key]) for key in _ADD_KEYS}
    return [add_sub(ins[0], ins[1], **params, act_min=_act(a)[0], act_max=_act(a)[1],
                    left_shift=int(a["left_shift"]), mode=ADDSUB_MODES[node.op],
                    requant=_requant(graph))]  # fmt: skip


_MUL_KEYS = ("input1_zp", "input2_zp", "output_zp", "multiplier", "shift")


def _mul_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    params = {key: int(a[key]) for key in _MUL_KEYS}
    return [mul(ins[0], ins[1], **params, act_min=_act(a)[0], act_max=_act(a)[1],
                requant=_requant(graph))]  # fmt: skip


def _broadcast_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    _check_act(node)
    a, b = (_shape(graph, t) for t in node.inputs)
    if max(len(a), len(b)) > 4:
        raise Invalid(_operand(node, 0), f"shapes {a} and {b}: more than 4 dimensions")
    try:
        return tuple(int(v) for v in np.broadcast_shapes(a, b))
    except ValueError:
        raise Invalid(_operand(node, 1), f"shape {b} does not broadcast with {a}") from None


def _broadcast_args(node: Node, graph: Graph, ctx: EmitContext) -> str:
    """input1, strides1, input2, strides2, dims: the kernels' broadcast arguments."""
    out = _shape(graph, node.outputs[0])
    dims = (1,) * (4 - len(out)) + out
    parts = []
    for i, t in enumerate(node.inputs):
        strides = broadcast_strides(_shape(graph, t), dims)
        data = graph.tensors[t].data
        ptr = ctx.ptr(t) if data is None else ctx.const(f"{node.name}_c{i + 1}", data)
        parts += [ptr, ctx.const(f"{node.name}_s{i + 1}", _i32(strides))]
    return ", ".join([*parts, ctx.const(node.name + "_dims", _i32(dims))])


def _addsub_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    params = ", ".join(str(int(a[key])) for key in _ADD_KEYS)
    lo, hi = _act(a)
    args = _broadcast_args(node, graph, ctx)
    mode, y = ADDSUB_MODES[node.op], ctx.ptr(node.outputs[0])
    return _call("tf_addsub_s8", args, params, lo, hi, int(a["left_shift"]), mode, y)


def _mul_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    params = ", ".join(str(int(a[key])) for key in _MUL_KEYS)
    lo, hi = _act(a)
    args = _broadcast_args(node, graph, ctx)
    return _call("tf_mul_s8", args, params, lo, hi, ctx.ptr(node.outputs[0]))


def _concat_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [concat(ins[0], ins[1], int(node.attrs["axis"]))]


def _concat_shape(node: Node, graph: Graph) -> tuple[int, ...]:
    a, b = (_shape(graph, t) for t in node.inputs)
    axis = int(node.attrs["axis"])
    if len(a) != len(b) or axis >= len(a):
        raise Invalid("attrs.axis", f"{axis} does not fit shapes {a} and {b}")
    if a[:axis] + a[axis + 1 :] != b[:axis] + b[axis + 1 :]:
        raise Invalid(_operand(node, 1), f"shape {b} differs from {a} off axis {axis}")
    return (*a[:axis], a[axis] + b[axis], *a[axis + 1 :])


def _concat_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a, b = (_shape(graph, t) for t in node.inputs)
    axis = int(node.attrs["axis"])
    outer = math.prod(a[:axis])
    x1, x2 = (ctx.ptr(t) for t in node.inputs)
    y = ctx.ptr(node.outputs[0])
    return _call("tf_concat_s8", x1, math.prod(a[axis:]), x2, math.prod(b[axis:]), outer, y)


# Broadcast operands: activations or int8 constants (a graph input is always an activation).
_EITHER1, _EITHER = Operand("x1", either=True), Operand("x2", either=True)


def _int32_const(role: str) -> Operand:
    return Operand(role, constant=True, dtype="int32")


_TRANSPOSE = {
    "shape": Attr(Int(1, INT32_MAX, 4)),
    "perm": Attr(Int(0, 3, 4)),
    "inner": Attr(_COUNT),
}
_QK = {"heads": Attr(_COUNT), "q_zp": Attr(_ZP), "k_zp": Attr(_ZP), "multiplier": Attr(_Q31),
       "shift": Attr(_SHIFT), "output_zp": Attr(_ZP)}  # fmt: skip
_AV = {"heads": Attr(_COUNT), "attn_zp": Attr(_ZP), "v_zp": Attr(_ZP), "multiplier": Attr(_Q31),
       "shift": Attr(_SHIFT), "output_zp": Attr(_ZP)}  # fmt: skip
_ADD = {
    **{key: Attr(_ZP if key.endswith("zp") else _Q31) for key in _ADD_KEYS if "shift" not in key},
    # Input multipliers are <= 1/2 (ops/elementwise.py), so a + b stays in int32.
    "input1_shift": Attr(Int(MIN_SHIFT, 0)),
    "input2_shift": Attr(Int(MIN_SHIFT, 0)),
    "output_shift": Attr(_SHIFT),
    "left_shift": Attr(Int(0, 22)),
    **_ACT,
}

OPS: dict[str, OpDef] = {
    "linear": OpDef(
        _linear_ref, _linear_emit, _linear_scratch,
        operands=(_X, _WEIGHTS, _BIAS), attrs=_WEIGHTED | _BLOCK_HINT, output_shape=_linear_shape,
    ),
    "conv2d": OpDef(
        _conv_ref, _conv_emit, _conv_scratch,
        operands=(_X, _WEIGHTS, _BIAS), attrs=_WEIGHTED | _WINDOW | _BLOCK_HINT,
        output_shape=_conv_shape,
    ),
    "depthwise_conv2d": OpDef(
        _conv_ref, _conv_emit,
        operands=(_X, Operand("weights", constant=True), _BIAS), attrs=_WEIGHTED | _WINDOW,
        output_shape=_conv_shape,
    ),
    "add": OpDef(
        _add_ref, _add_emit, inplace=0,
        operands=(Operand("x1"), Operand("x2")), attrs=_ADD, output_shape=_add_shape,
    ),
    "layernorm": OpDef(
        _layernorm_ref, _layernorm_emit, inplace=0,
        operands=(_X, _int32_const("gamma"), _int32_const("beta")),
        attrs={"eps": Attr(Int(0, INT32_MAX)), "output_zp": Attr(_ZP)},
        output_shape=_layernorm_shape,
    ),
    "softmax": OpDef(
        _softmax_ref, _softmax_emit, inplace=0,
        operands=(_X, _int32_const("exp_table")), attrs={},
        output_shape=_softmax_shape,
    ),
    "lut": OpDef(
        _lut_ref, _lut_emit, inplace=0,
        operands=(_X, Operand("table", constant=True)), attrs={}, output_shape=_lut_shape,
    ),
    "matmul_qk": OpDef(
        _qk_ref, _matmul_emit, _matmul_scratch,
        operands=(Operand("q"), Operand("k")), attrs=_QK, output_shape=_qk_shape,
    ),
    "matmul_av": OpDef(
        _av_ref, _matmul_emit, _matmul_scratch,
        operands=(Operand("attn"), Operand("v")), attrs=_AV, output_shape=_av_shape,
    ),
    "avgpool": OpDef(
        _avgpool_ref, _avgpool_emit,
        operands=(_X,), attrs={"kernel": Attr(Int(1, INT32_MAX, 2)), **_WINDOW, **_ACT,
                              "stride": Attr(_COUNT)},
        output_shape=_avgpool_shape,
    ),
    "maxpool": OpDef(
        _avgpool_ref, _avgpool_emit,
        operands=(_X,), attrs={"kernel": Attr(Int(1, INT32_MAX, 2)), **_WINDOW, **_ACT,
                              "stride": Attr(_COUNT)},
        output_shape=_avgpool_shape,
    ),
    "global_avgpool": OpDef(
        _gap_ref, _gap_emit, operands=(_X,), attrs=_ACT, output_shape=_gap_shape
    ),
    "mean": OpDef(
        _mean_ref, _mean_emit,
        operands=(_X,),
        attrs={"input_zp": Attr(_ZP), "output_zp": Attr(_ZP), "multiplier": Attr(_Q31),
               "shift": Attr(_SHIFT)},
        output_shape=_mean_shape,
    ),
    "transpose": OpDef(
        _transpose_ref, _transpose_emit,
        operands=(_X,), attrs=_TRANSPOSE, output_shape=_transpose_shape,
    ),
    "reshape": OpDef(
        _reshape_ref, _reshape_emit, inplace=0,
        operands=(_X,), attrs={}, output_shape=_reshape_shape,
    ),
    "sub": OpDef(
        _addsub_ref, _addsub_emit,
        operands=(_EITHER1, _EITHER), attrs=_ADD, output_shape=_broadcast_shape,
    ),
    "add_broadcast": OpDef(
        _addsub_ref, _addsub_emit,
        operands=(_EITHER1, _EITHER), attrs=_ADD, output_shape=_broadcast_shape,
    ),
    "squared_difference": OpDef(
        _addsub_ref, _addsub_emit,
        operands=(_EITHER1, _EITHER), attrs=_ADD, output_shape=_broadcast_shape,
    ),
    "mul": OpDef(
        _mul_ref, _mul_emit,
        operands=(_EITHER1, _EITHER),
        attrs={"input1_zp": Attr(_ZP), "input2_zp": Attr(_ZP), "output_zp": Attr(_ZP),
               "multiplier": Attr(_Q31), "shift": Attr(_SHIFT), **_ACT},
        output_shape=_broadcast_shape,
    ),
    "concat": OpDef(
        _concat_ref, _concat_emit,
        operands=(Operand("x1"), Operand("x2")), attrs={"axis": Attr(Int(0, 3))},
        output_shape=_concat_shape,
    ),
}  # fmt: skip


def opdef(op: str) -> OpDef:
    try:
        return OPS[op]
    except KeyError:
        supported = ", ".join(sorted(OPS))
        raise ValueError(f"op {op!r} is not supported; supported: {supported}") from None
