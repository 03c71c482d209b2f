"""The layers of ARCHITECTURE.md, enforced: a package imports only the layers it may.

Data flows one way, model -> IR -> plan -> C -> firmware -> measurements -> search, and so do
imports. A forbidden import fails here with the importing module named.
"""

from __future__ import annotations

from import_graph import import_graph

BASE = {"tinyformer", "atomic_write", "errors", "boards", "results"}
# package -> the packages it may import besides itself and BASE (ARCHITECTURE.md's table)
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "engine": set(),
    "compiler": {"engine"},
    "hil": {"engine", "compiler"},
    "perf": {"engine", "compiler", "hil"},
    "data": set(),
    "prune": {"engine"},  # the storage format's block sizes
    "model": {"data"},
    "quant": {"data", "engine", "model", "prune"},
    "nas": {"data", "engine", "compiler", "hil", "perf", "model", "prune", "quant"},
    "cli": {"data", "engine", "compiler", "hil", "perf", "model", "prune", "quant", "nas"},
}


def layer(module: str) -> str:
    top = module.split(".")[1] if "." in module else "tinyformer"
    return "base" if top in BASE else top


def forbidden(graph: dict[str, set[str]]) -> list[str]:
    out = []
    for module, deps in sorted(graph.items()):
        mine = layer(module)
        allowed = MAY_IMPORT[mine] | {mine, "base"}
        out += [f"{module} imports {dep}" for dep in sorted(deps) if layer(dep) not in allowed]
    return out


def test_every_package_has_a_layer() -> None:
    assert {layer(m) for m in import_graph()} <= set(MAY_IMPORT)


def test_no_forbidden_import() -> None:
    assert forbidden(import_graph()) == []


def test_a_forbidden_import_is_caught() -> None:
    graph = import_graph()
    graph["tinyformer.engine.ir"] = graph["tinyformer.engine.ir"] | {"tinyformer.hil.client"}
    graph["tinyformer.results"] = graph["tinyformer.results"] | {"tinyformer.nas.search"}
    assert forbidden(graph) == [
        "tinyformer.engine.ir imports tinyformer.hil.client",
        "tinyformer.results imports tinyformer.nas.search",
    ]
