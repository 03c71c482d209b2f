"""No import cycles inside ``tinyformer`` (the graph: tests/import_graph.py)."""

from __future__ import annotations

import ast

from import_graph import import_graph, imports_of

# Cycles to live with, each the set of modules of one strongly connected component (none
# now). The test fails on an entry that no longer matches, to keep the list honest.
ALLOWED: list[frozenset[str]] = []


def cycles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[frozenset[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(frozenset(component))
    return found


def _describe(component: frozenset[str], graph: dict[str, set[str]]) -> str:
    edges = sorted(f"{a} -> {b}" for a in component for b in graph[a] if b in component)
    return "\n    ".join([", ".join(sorted(component)), *edges])


def test_the_graph_sees_function_level_and_relative_imports() -> None:
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from . import b\n"
        "if TYPE_CHECKING:\n    import tinyformer.c\n"
        "def f():\n    from tinyformer.pkg import d\n"
    )
    modules = {"tinyformer.pkg.a", "tinyformer.pkg.b", "tinyformer.c", "tinyformer.pkg"}
    assert imports_of(tree, "tinyformer.pkg.a", False, modules) == {
        "tinyformer.pkg",  # both from-imports run the package's __init__
        "tinyformer.pkg.b",
    }


def test_no_import_cycles() -> None:
    graph = import_graph()
    found = cycles(graph)
    new = [c for c in found if c not in ALLOWED]
    gone = [c for c in ALLOWED if c not in found]
    report = "\n".join(f"  {_describe(c, graph)}" for c in new)
    assert not new, f"import cycles:\n{report}"
    assert not gone, f"allow-listed cycles that no longer exist: {[sorted(c) for c in gone]}"
