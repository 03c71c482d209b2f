"""What each IR op means (its numpy reference) and how it lowers to C (its kernel call).

One entry per op keeps the two side by side, so the interpreter and the code generator
cannot drift apart. Emitters get pointer expressions for their tensors and return the C
statements of one layer; constants they need are registered with ``ctx.const``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from tinyformer.engine.ir import Graph, Node
from tinyformer.engine.ops.linear import fold_input_zero_point, fully_connected


class EmitContext(Protocol):
    def const(self, name: str, values: np.ndarray) -> str: ...
    def ptr(self, tensor: str) -> str: ...
    def scratch(self, node: Node) -> str: ...


@dataclass(frozen=True)
class OpDef:
    reference: Callable[[Node, Graph, list[np.ndarray]], list[np.ndarray]]
    emit: Callable[[Node, Graph, EmitContext], tuple[list[str], str]]
    scratch_bytes: Callable[[Node, Graph], int] = lambda node, graph: 0
    inplace: int | None = None  # input index the output may overwrite


def weights_of(graph: Graph, name: str) -> np.ndarray:
    """A weight tensor's dense int8 values, decoding block-sparse storage."""
    t = graph.tensors[name]
    if t.encoding is None:
        return t.data
    if t.encoding == "block-rle":
        from tinyformer.engine.sparse_format import decode

        return decode(t.data.tobytes())
    raise ValueError(f"tensor {name!r} has unknown encoding {t.encoding!r}")


def _act(a: dict[str, Any]) -> tuple[int, int]:
    return int(a.get("act_min", -128)), int(a.get("act_max", 127))


# -- linear -----------------------------------------------------------------------------------


def _linear_ref(node: Node, graph: Graph, ins: list[np.ndarray]) -> list[np.ndarray]:
    a = node.attrs
    x = ins[0].reshape(-1, ins[0].shape[-1])
    bias = graph.tensors[node.inputs[2]].data if len(node.inputs) > 2 else None
    out = fully_connected(
        x, weights_of(graph, node.inputs[1]), bias, a["input_zp"], a["output_zp"],
        np.asarray(a["multiplier"]), np.asarray(a["shift"]), *_act(a),
    )  # fmt: skip
    return [out.reshape(graph.tensors[node.outputs[0]].shape)]


def _linear_dims(node: Node, graph: Graph) -> tuple[int, int, int]:
    x = graph.tensors[node.inputs[0]].shape
    m = graph.tensors[node.outputs[0]].shape[-1]
    k = x[-1]
    return int(np.prod(x[:-1])), k, m


def _linear_scratch(node: Node, graph: Graph) -> int:
    _, k, _ = _linear_dims(node, graph)
    return (k // 4) * 4 * 8  # tf_fully_connected_s8_scratch_bytes


def _linear_emit(node: Node, graph: Graph, ctx: EmitContext) -> tuple[list[str], str]:
    a = node.attrs
    n, k, m = _linear_dims(node, graph)
    w = weights_of(graph, node.inputs[1])
    bias = graph.tensors[node.inputs[2]].data if len(node.inputs) > 2 else None
    folded = fold_input_zero_point(w, bias, a["input_zp"])
    lo, hi = _act(a)
    args = (
        f"{ctx.const(node.name + '_b', folded)}, "
        f"{ctx.const(node.name + '_m', np.asarray(a['multiplier'], np.int32))}, "
        f"{ctx.const(node.name + '_s', np.asarray(a['shift'], np.int32))}, "
        f"{a['output_zp']}, {lo}, {hi}, {n}, {k}, {m}, {ctx.ptr(node.outputs[0])}, "
        f"{ctx.scratch(node)}"
    )
    x = ctx.ptr(node.inputs[0])
    code = f"    tf_fully_connected_s8({x}, {ctx.const(node.name + '_w', w)}, {args});"
    return ["tf_fully_connected_s8.h"], code


OPS: dict[str, OpDef] = {
    "linear": OpDef(_linear_ref, _linear_emit, _linear_scratch),
}


def opdef(op: str) -> OpDef:
    try:
        return OPS[op]
    except KeyError:
        supported = ", ".join(sorted(OPS))
        raise ValueError(f"op {op!r} is not supported; supported: {supported}") from None
