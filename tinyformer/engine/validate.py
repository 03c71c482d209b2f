"""Is a graph well formed, to the last field? The one definition, run by ``Graph.validate``:
on every load, before every save and before planning, so no file that would crash or
mislead the compiler gets past it.

Checked: names (printable, safe inside C comments and strings; node names unique, also as
the C identifiers of their constants), tensors (dtype, shape of positive ints within int32
sizes, finite positive scale, int8 zero point, known encoding, data matching dtype and
shape), one graph input and one output, both activations, and every node against its op's
spec in opset.py: arity, operand kinds and dtypes, attribute types and ranges, and the
output shape the op computes from its inputs (so shapes agree along the graph). Tensors are
written once, by one node, before they are read (execution order is a topological order).

Every problem raises :class:`IRFormatError` with one line naming the node (index, op, name)
or tensor, and the field.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from tinyformer.engine import sparse_format
from tinyformer.engine.graph import DTYPES, Graph, IRFormatError, Node, Tensor, c_identifier
from tinyformer.engine.opset import OPS, ROUNDINGS
from tinyformer.engine.opspec import Invalid, check_attrs, is_int

MAX_NAME = 200
MAX_RANK = 8
MAX_BYTES = 2**31 - 1  # sizes and arena offsets are int32 in the generated C
MAX_NODES = 2**16 - 1  # tf_model.h's n_layers and the RUN reply's layer count are u16
_INT8 = range(-128, 128)


def check_name(what: str, name: object, ascii_only: bool = False) -> None:
    """Names end up in C comments, string literals and Makefiles: one printable line without
    quotes, backslashes or comment delimiters; in the plan plot's labels, where matplotlib
    reads $...$ as math. Node names also become C identifiers: ASCII."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        raise IRFormatError(f"{what} must be 1..{MAX_NAME} characters, got {name!r:.80}")
    if not name.isprintable() or (ascii_only and not name.isascii()):
        raise IRFormatError(f"{what} {name!r} has non-printable or non-ASCII characters")
    for bad in ('"', "\\", "/*", "*/", "$"):
        if bad in name:
            raise IRFormatError(f"{what} {name!r} contains {bad!r}")


def _check_shape(what: str, shape: object, dtype: str) -> None:
    if not isinstance(shape, tuple | list) or not all(is_int(d) for d in shape):
        raise IRFormatError(f"{what}: shape must be a list of integers, got {shape!r:.80}")
    if not 1 <= len(shape) <= MAX_RANK or min(shape) < 1:
        raise IRFormatError(
            f"{what}: shape {list(shape)} must have 1..{MAX_RANK} dimensions, each >= 1"
        )
    if math.prod(shape) * np.dtype(dtype).itemsize > MAX_BYTES:
        raise IRFormatError(f"{what}: shape {list(shape)} is over {MAX_BYTES} bytes")


def _check_data(what: str, t: Tensor) -> None:
    data = t.data
    if not isinstance(data, np.ndarray):
        raise IRFormatError(f"{what}: data must be an array, got {type(data).__name__}")
    if t.encoding is None:
        if data.dtype != np.dtype(t.dtype) or data.shape != tuple(t.shape):
            raise IRFormatError(
                f"{what}: data is {data.dtype} {list(data.shape)}, the tensor {t.dtype} "
                f"{list(t.shape)}"
            )
        return
    # block-rle: the blob of the weights [rows][cols], rows first, cols the rest.
    if t.dtype != "int8" or len(t.shape) < 2 or data.dtype != np.uint8 or data.ndim != 1:
        raise IRFormatError(
            f"{what}: block-rle stores int8 weights of 2+ dimensions as a uint8 blob"
        )
    try:
        head = sparse_format.header(data)
    except sparse_format.SparseFormatError as exc:
        raise IRFormatError(f"{what}: {exc}") from None
    if (head.rows, head.cols) != (t.shape[0], math.prod(t.shape[1:])):
        raise IRFormatError(
            f"{what}: block-rle blob holds {head.rows} x {head.cols} weights, the shape "
            f"{list(t.shape)} needs {t.shape[0]} x {math.prod(t.shape[1:])}"
        )


def check_tensor(key: str, t: Tensor) -> None:
    check_name("tensor name", key)
    what = f"tensor {key!r}"
    if t.name != key:
        raise IRFormatError(f"{what} calls itself {t.name!r}")
    if not isinstance(t.dtype, str) or t.dtype not in DTYPES:
        raise IRFormatError(f"{what} has unknown dtype {t.dtype!r}; known: {sorted(DTYPES)}")
    _check_shape(what, t.shape, t.dtype)
    real = isinstance(t.scale, numbers.Real) and not isinstance(t.scale, bool | np.bool_)
    if not real or not math.isfinite(t.scale) or t.scale <= 0:
        raise IRFormatError(f"{what}: scale must be a finite number > 0, got {t.scale!r}")
    if not is_int(t.zero_point) or t.zero_point not in _INT8:
        raise IRFormatError(f"{what}: zero_point must be an int8, got {t.zero_point!r}")
    if t.encoding not in (None, sparse_format.ENCODING):
        raise IRFormatError(
            f"{what} has unknown encoding {t.encoding!r}; known: {sparse_format.ENCODING!r}"
        )
    if t.data is None:
        if t.dtype != "int8" or t.encoding is not None:
            raise IRFormatError(f"{what}: activations are int8 and not encoded")
    else:
        _check_data(what, t)


def _check_io(graph: Graph) -> None:
    for what, names in (("inputs", graph.inputs), ("outputs", graph.outputs)):
        # The firmware's model API has one input buffer and one output buffer.
        if not isinstance(names, list) or len(names) != 1 or not isinstance(names[0], str):
            raise IRFormatError(f"graph {what} must be a list of one tensor name, got {names!r}")
        t = graph.tensors.get(names[0])
        if t is None:
            raise IRFormatError(f"graph {what[:-1]} {names[0]!r} is not a tensor")
        if t.is_constant:
            raise IRFormatError(f"graph {what[:-1]} {names[0]!r} is a constant")


def _names(field: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise Invalid(field, f"must be a list of tensor names, got {value!r}")
    return value


def _check_node(graph: Graph, node: Node, produced: set[str]) -> None:
    """One node against its op's spec; ``produced``: activations written by earlier nodes
    and the graph input."""
    if not isinstance(node.op, str) or node.op not in OPS:
        raise Invalid("op", f"unknown op; known: {', '.join(sorted(OPS))}")
    d = OPS[node.op]
    inputs, outputs = _names("inputs", node.inputs), _names("outputs", node.outputs)
    required = sum(not o.optional for o in d.operands)
    if not required <= len(inputs) <= len(d.operands):
        arity = f"{required}..{len(d.operands)}" if required < len(d.operands) else required
        raise Invalid("inputs", f"takes {arity} tensors, got {len(inputs)}")
    for i, (name, spec) in enumerate(zip(inputs, d.operands, strict=False)):
        field = f"input {i} {name!r} ({spec.role})"
        t = graph.tensors.get(name)
        if t is None:
            raise Invalid(field, "is not a tensor")
        if not spec.either and t.is_constant != spec.constant:
            raise Invalid(field, "must be a constant" if spec.constant else "must be an activation")
        if not t.is_constant and name not in produced:
            raise Invalid(field, "is read before it is produced")
        if t.dtype != spec.dtype:
            raise Invalid(field, f"must be {spec.dtype}, got {t.dtype}")
        if t.encoding is not None and not spec.sparse:
            raise Invalid(field, f"cannot be stored {t.encoding}")
    if len(outputs) != 1:
        raise Invalid("outputs", f"takes 1 tensor, got {len(outputs)}")
    out = graph.tensors.get(outputs[0])
    field = f"output {outputs[0]!r}"
    if out is None:
        raise Invalid(field, "is not a tensor")
    if out.is_constant:
        raise Invalid(field, "is a constant")
    if outputs[0] in produced:
        raise Invalid(field, "is already written (by the graph input or an earlier node)")
    check_attrs(d.attrs, node.attrs)
    want = d.output_shape(node, graph)
    if tuple(out.shape) != tuple(want):
        raise Invalid(field, f"has shape {list(out.shape)}, the op computes {list(want)}")


def check_graph(graph: Graph) -> None:
    """Raise IRFormatError on the first problem of ``graph`` (module docstring)."""
    check_name("graph name", graph.name)
    if not all(isinstance(v, dict) for v in (graph.tensors, graph.meta)):
        raise IRFormatError("graph tensors and meta must be objects")
    if not isinstance(graph.nodes, list):
        raise IRFormatError("graph nodes must be a list")
    if graph.meta.get("rounding", "single") not in ROUNDINGS:
        raise IRFormatError(
            f"meta.rounding {graph.meta['rounding']!r:.40} is not one of {ROUNDINGS}"
        )
    if len(graph.nodes) > MAX_NODES:
        raise IRFormatError(
            f"{len(graph.nodes):,} nodes: the firmware numbers layers in 16 bits "
            f"(at most {MAX_NODES:,})"
        )
    for key, t in graph.tensors.items():
        check_tensor(key, t)
    _check_io(graph)
    produced = {graph.inputs[0]}
    node_names: dict[str, int] = {}
    for i, node in enumerate(graph.nodes):
        known = isinstance(node.op, str) and node.op in OPS
        op = node.op if known else repr(node.op)  # text from a file: quoted, one line
        where = f"node {i} ({op} {node.name!r})"
        check_name(f"{where}: name", node.name, ascii_only=True)
        # Constants are named after their node in C: "a.b" and "a_b" would clash there.
        first = node_names.setdefault(c_identifier(node.name), i)
        if first != i:
            raise IRFormatError(f"{where}: name clashes with node {first}'s")
        try:
            _check_node(graph, node, produced)
        except Invalid as exc:
            raise IRFormatError(f"{where}: {exc}") from None
        produced.update(node.outputs)
    for name, t in graph.tensors.items():
        if not t.is_constant and name not in produced:
            raise IRFormatError(f"tensor {name!r} is an activation that nothing produces")
