"""Fuzz: real models' IR headers mutated at random, each given a valid checksum. Loading must
either succeed or raise IRFormatError; a file that loads must go through what
``tinyformer compile`` does up to the C source (plan, code generation, rendering, the
per-layer profile), a re-save, and the numpy reference, with no exception at all.

TF_FUZZ_EXAMPLES sets the number of files (default 400, a few seconds); the accepted and
rejected counts are hypothesis events (``pytest --hypothesis-show-statistics``).
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import numpy as np
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from ir_tamper import GRAPHS, header_of, reframe  # tests/ is on sys.path (conftest.py)

from tinyformer.compiler.profile import layer_profile
from tinyformer.engine import ir, reference
from tinyformer.engine.codegen import generate, plan_graph
from tinyformer.engine.opset import OPS

EXAMPLES = int(os.environ.get("TF_FUZZ_EXAMPLES", "400"))
DEEP = "@@deep@@"  # "@@deep@@N@@deep@@" stands for N nested arrays, spliced in as raw JSON


@functools.cache
def original(key: str) -> bytes:
    return ir.to_bytes(GRAPHS[key]())


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every place in the JSON tree below the root, parents before children."""
    items = value.items() if isinstance(value, dict) else enumerate(value)
    out = []
    for k, v in items:
        out.append((*prefix, k))
        if isinstance(v, dict | list) and v:
            out += _paths(v, (*prefix, k))
    return out


def _at(root: Any, path: tuple) -> tuple[Any, Any]:
    """(parent, key) of ``path``."""
    for k in path[:-1]:
        root = root[k]
    return root, path[-1]


NAMES = ["x", "y", "w", "b", "input", "stem_out", "to_tokens_out", "head_out", "conv_w",
         "a\nb", "[/x]", "fc", "é", "*/", "$x$", "a.b"]  # fmt: skip
SPECIAL = [0, -1, 1, 2, 3, 4, 127, 128, -128, -129, 255, 256, 2**15, 2**30, 2**31 - 1, 2**31,
           -(2**31), -(2**31) - 1, 2**32, 2**63, 10**30]  # fmt: skip
leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from(SPECIAL),
    st.integers(),
    st.floats(),
    st.text(max_size=6),
    st.sampled_from([*OPS, *NAMES, "block-rle", "zstd", "int8", "int32", "float32", "uint8"]),
)
value = st.one_of(
    leaf,
    st.lists(st.one_of(st.sampled_from(SPECIAL), st.integers(-3, 40)), max_size=5),
    st.dictionaries(st.sampled_from(["offset", "nbytes", "dtype", "a"]), leaf, max_size=3),
    st.builds(lambda depth: f"{DEEP}{depth}{DEEP}", st.sampled_from([20, 40, 1000, 100_000])),
)
mutation = st.one_of(
    st.tuples(st.just("delete"), st.integers(0, 10**6)),
    st.tuples(st.just("replace"), st.integers(0, 10**6), value),
    st.tuples(st.just("number"), st.integers(0, 10**6), st.sampled_from(
        ["negate", "huge", "float", "str", "null", "zero", "plus1", "minus1", "list"])),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.sampled_from(["a", "block", "data"]),
              value),
    st.tuples(st.just("op"), st.integers(0, 10**6), st.sampled_from(sorted(OPS))),
    st.tuples(st.just("duplicate"), st.integers(0, 10**6), st.booleans()),
    st.tuples(st.just("swap"), st.integers(0, 10**6), st.integers(0, 10**6)),
    st.tuples(st.just("rename"), st.integers(0, 10**6), st.sampled_from(NAMES)),
)  # fmt: skip


def _number(v: Any, how: str) -> Any:
    if isinstance(v, list):
        return [_number(x, how) for x in v]
    if not isinstance(v, int | float) or isinstance(v, bool):
        return v
    return {
        "negate": -v if v else -1, "huge": v * 2**40 + 2**31, "float": v + 0.5, "str": str(v),
        "null": None, "zero": 0, "plus1": v + 1, "minus1": v - 1, "list": [v],
    }[how]  # fmt: skip


def mutate(h: dict[str, Any], m: tuple) -> None:
    """Apply one mutation to header ``h`` (indices wrap around what exists)."""
    kind, i = m[0], m[1]
    paths = _paths(h)
    if not paths:
        return
    parent, key = _at(h, paths[i % len(paths)])
    nodes = h.get("nodes") if isinstance(h.get("nodes"), list) else []
    if kind == "delete":
        del parent[key]
    elif kind == "replace":
        parent[key] = m[2]
    elif kind == "number":
        parent[key] = _number(parent[key], m[2])
    elif kind == "insert":
        target = parent[key]
        if isinstance(target, dict):
            target[m[2]] = m[3]
        elif isinstance(target, list):
            target.insert(len(target) // 2, m[3])
    elif kind == "rename" and isinstance(parent, dict):
        parent[m[2]] = parent.pop(key)
    elif nodes and kind == "op" and isinstance(nodes[i % len(nodes)], dict):
        nodes[i % len(nodes)]["op"] = m[2]
    elif nodes and kind == "duplicate":
        twin = json.loads(json.dumps(nodes[i % len(nodes)]))
        if m[2] and isinstance(twin, dict):
            twin["name"] = f"{twin.get('name')}_twin"
        nodes.insert(i % len(nodes) + 1, twin)
    elif nodes and kind == "swap":
        a, b = i % len(nodes), m[2] % len(nodes)
        nodes[a], nodes[b] = nodes[b], nodes[a]


def tampered_file(key: str, mutations: list[tuple], framing: dict[str, Any]) -> bytes:
    data = original(key)
    h = header_of(data)
    for m in mutations:
        mutate(h, m)
    text = json.dumps(h)
    parts = text.split(DEEP)  # "...", depth, "...", depth, ...
    for j in range(1, len(parts), 2):
        depth = int(parts[j])
        parts[j] = "[" * depth + "]" * depth
        parts[j - 1], parts[j + 1] = parts[j - 1][:-1], parts[j + 1][1:]  # the quotes
    return reframe(data, "".join(parts).encode(), **framing)


def compile_and_run(graph: ir.Graph) -> None:
    """What ``tinyformer compile`` does up to the C compiler, a re-save, the reference."""
    plan = plan_graph(graph)
    generate(graph, plan).render()
    layer_profile(graph)
    assert ir.digest(ir.from_bytes(ir.to_bytes(graph))) == ir.digest(graph)
    t = graph.tensors[graph.inputs[0]]
    x = np.random.default_rng(0).integers(-128, 128, t.shape, dtype=np.int8)
    reference.run(graph, x)


reframing = st.one_of(
    st.fixed_dictionaries({"tail": st.binary(min_size=1, max_size=4)}),
    st.fixed_dictionaries({"version": st.sampled_from([0, 2, 65535])}),
    st.fixed_dictionaries({"reserved": st.integers(1, 65535)}),
)
# One file in ten has its framing changed too (each such file must be refused).
framing = st.integers(0, 9).flatmap(lambda n: reframing if n == 7 else st.just({}))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    key=st.sampled_from(sorted(GRAPHS)),
    mutations=st.lists(mutation, min_size=1, max_size=3),
    framing=framing,
)
def test_tampered_headers_load_cleanly_or_not_at_all(
    key: str, mutations: list[tuple], framing: dict[str, Any]
) -> None:
    data = tampered_file(key, mutations, framing)
    try:
        graph = ir.from_bytes(data)
    except ir.IRFormatError as exc:
        event("rejected")
        assert str(exc).isprintable(), str(exc)  # the CLI prints it as one line
        return
    event("accepted")
    compile_and_run(graph)
