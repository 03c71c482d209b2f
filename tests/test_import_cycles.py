"""No import cycles inside ``tinyformer``: a static graph of its modules, built with ``ast``.

Edges: every ``import tinyformer.x`` / ``from tinyformer.x import y`` (relative ones too),
at module level or inside functions, except under ``if TYPE_CHECKING:``. ``from pkg import
name`` is an edge to the package's ``__init__`` (it runs it and reads its namespace) and to
``pkg.name`` when that is a module; so a module that imports from its own package closes a
cycle with an ``__init__`` that imports the module (write ``from pkg.mod import name``).
Parent packages that ``import pkg.mod`` loads implicitly are not edges: every package would
otherwise be a cycle with its re-exporting ``__init__``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import tinyformer

ROOT = Path(tinyformer.__file__).parent
PACKAGE = "tinyformer"

# Cycles outside model/, prune/ and quant/, left to their owners; each entry is the set of
# modules of one strongly connected component. Remove an entry once that cycle is gone (the
# test fails on an entry that no longer matches, to keep the list honest).
ALLOWED: list[frozenset[str]] = [
    # ir's validation imports engine.validate (inside a function), which imports codegen
    # (c_identifier), opset and opspec, which import ir: the IR and its checks need separating.
    frozenset(
        {
            "tinyformer.engine.codegen",
            "tinyformer.engine.ir",
            "tinyformer.engine.opset",
            "tinyformer.engine.opspec",
            "tinyformer.engine.validate",
        }
    ),
    # The targets package __init__ (make_target) imports the emulator targets, which import
    # their sibling through it (``from tinyformer.hil.targets import emulator``): part of the
    # hil -> compiler / perf move.
    frozenset(
        {"tinyformer.hil.targets", "tinyformer.hil.targets.qemu", "tinyformer.hil.targets.renode"}
    ),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
    """The tinyformer modules that the module ``name`` imports."""
    found: set[str] = set()
    package = name if is_package else name.rpartition(".")[0]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == PACKAGE)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            if base.split(".")[0] == PACKAGE:
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in modules and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}
    modules = set(paths)
    return {
        name: _imports(ast.parse(p.read_text(), str(p)), name, p.name == "__init__.py", modules)
        for name, p in paths.items()
    }


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
    assert _imports(tree, "tinyformer.pkg.a", False, modules) == {
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
