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
    global_avgpool    x [H][W][C] or [T][C] -> [C]         act_min act_max
    transpose         x                                    shape[4] perm[4] inner
    reshape           x                                    (same bytes, new shape)

conv2d and linear weights may be stored block-sparse (``Tensor.encoding == "block-rle"``);
they then lower to the block-sparse kernels, with the same integer semantics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tinyformer.engine.intmath import smlal_requant_table
from tinyformer.engine.ir import Graph, Node
from tinyformer.engine.ops.conv import (
    conv2d,
    conv2d_scratch_bytes,
    depthwise_bias,
    depthwise_conv2d,
    depthwise_weights_s16,
    fold_conv_bias,
)
from tinyformer.engine.ops.elementwise import add
from tinyformer.engine.ops.gelu import lut
from tinyformer.engine.ops.layout import transpose_s8
from tinyformer.engine.ops.linear import fc_scratch_bytes, fold_input_zero_point, fully_connected
from tinyformer.engine.ops.matmul import batch_matmul_av, batch_matmul_qk, bmm_scratch_bytes
from tinyformer.engine.ops.norm import layernorm, layernorm_affine
from tinyformer.engine.ops.pool import avgpool, global_avgpool
from tinyformer.engine.ops.softmax import softmax


class EmitContext(Protocol):
    def const(self, name: str, values: np.ndarray) -> str: ...
    def ptr(self, tensor: str) -> str: ...
    def scratch(self, node: Node) -> str: ...


Reference = Callable[[Node, Graph, list[np.ndarray]], list[np.ndarray]]
Emit = Callable[[Node, Graph, EmitContext], tuple[list[str], str]]


@dataclass(frozen=True)
class OpDef:
    reference: Reference
    emit: Emit
    scratch_bytes: Callable[[Node, Graph], int] = lambda node, graph: 0
    inplace: int | None = None  # input index the output may overwrite


def is_sparse(graph: Graph, name: str) -> bool:
    return graph.tensors[name].encoding == "block-rle"


def weights_of(graph: Graph, name: str) -> np.ndarray:
    """A weight tensor's dense int8 values, decoding block-sparse storage."""
    t = graph.tensors[name]
    if t.encoding is None:
        return t.data
    if t.encoding == "block-rle":
        from tinyformer.engine.sparse_format import decode

        return decode(t.data.tobytes()).reshape(t.shape)
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


# -- linear -----------------------------------------------------------------------------------


def _linear_dims(node: Node, graph: Graph) -> tuple[int, int, int]:
    x = _shape(graph, node.inputs[0])
    return int(np.prod(x[:-1])), x[-1], _shape(graph, node.outputs[0])[-1]


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
    )
    return [out.reshape(_shape(graph, node.outputs[0]))]


def _linear_scratch(node: Node, graph: Graph) -> int:
    _, k, _ = _linear_dims(node, graph)
    if is_sparse(graph, node.inputs[1]):
        from tinyformer.engine.ops import sparse

        return sparse.scratch_bytes_of(graph.tensors[node.inputs[1]].data)
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

        weights = sparse.emit_weights(ctx, node.name + "_w", graph.tensors[node.inputs[1]].data)
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
    )
    return [out]


def _conv_scratch(node: Node, graph: Graph) -> int:
    _, _, c, kh, kw, _ = _conv_geometry(node, graph)
    if is_sparse(graph, node.inputs[1]):
        from tinyformer.engine.ops import sparse

        return sparse.scratch_bytes_of(graph.tensors[node.inputs[1]].data, kh, kw)
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
        bias = ctx.const(node.name + "_b", depthwise_bias(weights, _bias(graph, node)))
        wc = ctx.const(node.name + "_w", depthwise_weights_s16(weights))
        table = smlal_requant_table(a["multiplier"], a["shift"], int(a["output_zp"]))
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

        wc = sparse.emit_weights(ctx, node.name + "_w", graph.tensors[node.inputs[1]].data)
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
    return [add(ins[0], ins[1], **params, act_min=lo, act_max=hi, left_shift=a["left_shift"])]


def _add_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    x1, x2 = (ctx.ptr(t) for t in node.inputs)
    n = graph.tensors[node.outputs[0]].nbytes
    params = ", ".join(str(int(a[key])) for key in _ADD_KEYS)
    lo, hi = _act(a)
    code = (
        f"    tf_add_s8({x1}, {x2}, {n}, {params}, {lo}, {hi}, {int(a['left_shift'])}, "
        f"{ctx.ptr(node.outputs[0])});"
    )
    return ["tf_add_s8.h"], code


def _layernorm_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    x = ins[0].reshape(-1, ins[0].shape[-1])
    out = layernorm(x, ins[1], ins[2], int(a["eps"]), int(a["output_zp"]))
    return [out.reshape(ins[0].shape)]


def _layernorm_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    shape = _shape(graph, node.inputs[0])
    t, d = int(np.prod(shape[:-1])), shape[-1]
    gamma, beta = (graph.tensors[name].data for name in node.inputs[1:3])
    affine = ctx.const(
        node.name + "_affine", layernorm_affine(gamma, beta, int(a["output_zp"])).ravel()
    )
    code = (
        f"    tf_layernorm_s8({ctx.ptr(node.inputs[0])}, {affine}, {int(a['eps'])}, {t}, {d}, "
        f"{ctx.ptr(node.outputs[0])});"
    )
    return ["tf_layernorm_s8.h"], code


def _softmax_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [softmax(ins[0], ins[1])]


def _softmax_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    shape = _shape(graph, node.inputs[0])
    table = ctx.const(node.name + "_exp", _i32(graph.tensors[node.inputs[1]].data))
    code = (
        f"    tf_softmax_s8({ctx.ptr(node.inputs[0])}, {table}, {int(np.prod(shape[:-1]))}, "
        f"{shape[-1]}, {ctx.ptr(node.outputs[0])});"
    )
    return ["tf_softmax_s8.h"], code


def _lut_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [lut(ins[0], ins[1])]


def _lut_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    table = ctx.const(node.name + "_lut", np.asarray(graph.tensors[node.inputs[1]].data, np.int8))
    n = graph.tensors[node.inputs[0]].nbytes
    code = f"    tf_lut_s8({ctx.ptr(node.inputs[0])}, {table}, {n}, {ctx.ptr(node.outputs[0])});"
    return ["tf_lut_s8.h"], code


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
    if node.op == "matmul_qk":
        code = (
            f"    tf_batch_matmul_qk_s8({a0}, {heads * d}, {int(a['q_zp'])}, {a1}, {heads * d}, "
            f"{int(a['k_zp'])}, {dims}, {rq}, {y}, {ctx.scratch(node)});"
        )
    else:
        code = (
            f"    tf_batch_matmul_av_s8({a0}, {int(a['attn_zp'])}, {a1}, {heads * d}, "
            f"{int(a['v_zp'])}, {dims}, {rq}, {y}, {heads * d}, {ctx.scratch(node)});"
        )
    return ["tf_batch_matmul_s8.h"], code


# -- pooling and layout -----------------------------------------------------------------------


def _avgpool_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    kh, kw = a["kernel"]
    return [avgpool(ins[0], int(kh), int(kw), int(a["stride"]), _padding(a), *_act(a))]


def _avgpool_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    h, w, c = _shape(graph, node.inputs[0])
    kh, kw = a["kernel"]
    pads = ", ".join(str(p) for p in _padding(a))
    lo, hi = _act(a)
    code = (
        f"    tf_avgpool_s8({ctx.ptr(node.inputs[0])}, {h}, {w}, {c}, {kh}, {kw}, "
        f"{int(a['stride'])}, {pads}, {lo}, {hi}, {ctx.ptr(node.outputs[0])});"
    )
    return ["tf_avgpool_s8.h"], code


def _gap_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [global_avgpool(ins[0], *_act(node.attrs))]


def _gap_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    shape = _shape(graph, node.inputs[0])
    lo, hi = _act(node.attrs)
    code = (
        f"    tf_global_avgpool_s8({ctx.ptr(node.inputs[0])}, {int(np.prod(shape[:-1]))}, "
        f"{shape[-1]}, {lo}, {hi}, {ctx.ptr(node.outputs[0])});"
    )
    return ["tf_global_avgpool_s8.h"], code


def _transpose_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    out = transpose_s8(ins[0], tuple(a["shape"]), tuple(a["perm"]), int(a["inner"]))
    return [out.reshape(_shape(graph, node.outputs[0]))]


def _transpose_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    shape = ctx.const(node.name + "_shape", _i32(a["shape"]))
    perm = ctx.const(node.name + "_perm", _i32(a["perm"]))
    code = (
        f"    tf_transpose_s8({ctx.ptr(node.inputs[0])}, {shape}, {perm}, {int(a['inner'])}, "
        f"{ctx.ptr(node.outputs[0])});"
    )
    return ["tf_transpose_s8.h"], code


def _reshape_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    return [ins[0].reshape(_shape(graph, node.outputs[0]))]


def _reshape_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    src, dst = ctx.ptr(node.inputs[0]), ctx.ptr(node.outputs[0])
    if src == dst:  # the planner gave the output the input's buffer: nothing to move
        return [], "    /* in place */"
    n = graph.tensors[node.inputs[0]].nbytes
    return ["string.h"], f"    memmove({dst}, {src}, {n});"


OPS: dict[str, OpDef] = {
    "linear": OpDef(_linear_ref, _linear_emit, _linear_scratch),
    "conv2d": OpDef(_conv_ref, _conv_emit, _conv_scratch),
    "depthwise_conv2d": OpDef(_conv_ref, _conv_emit),
    "add": OpDef(_add_ref, _add_emit, inplace=0),
    "layernorm": OpDef(_layernorm_ref, _layernorm_emit, inplace=0),
    "softmax": OpDef(_softmax_ref, _softmax_emit, inplace=0),
    "lut": OpDef(_lut_ref, _lut_emit, inplace=0),
    "matmul_qk": OpDef(_qk_ref, _matmul_emit, _matmul_scratch),
    "matmul_av": OpDef(_av_ref, _matmul_emit, _matmul_scratch),
    "avgpool": OpDef(_avgpool_ref, _avgpool_emit),
    "global_avgpool": OpDef(_gap_ref, _gap_emit),
    "transpose": OpDef(_transpose_ref, _transpose_emit),
    "reshape": OpDef(_reshape_ref, _reshape_emit, inplace=0),
}


def opdef(op: str) -> OpDef:
    try:
        return OPS[op]
    except KeyError:
        supported = ", ".join(sorted(OPS))
        raise ValueError(f"op {op!r} is not supported; supported: {supported}") from None
