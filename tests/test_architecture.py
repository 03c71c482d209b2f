"""The layers of ARCHITECTURE.md, enforced: a package imports only the layers it may.

Data flows one way, model -> IR -> plan -> C -> firmware -> measurements -> search, and so do
imports. A forbidden import fails here with the importing module named.
"""

from __future__ import annotations

from import_graph import import_graph

BASE = {"tinyformer", "atomic_write", "json_document", "errors", "boards", "results"}
# quant holds the QAT primitives the blocks build on, and the QAT run that trains blocks
QAT = {"pipeline", "checkpoint", "evaluate", "train_state"}
# package -> the packages it may import besides itself and BASE (ARCHITECTURE.md's table)
MAY_IMPORT: dict[str, set[str]] = {
    "base": set(),
    "engine": set(),
    "compiler": {"engine"},
    "hil": {"engine", "compiler"},
    "cluster": {"engine", "compiler", "hil"},  # the execution layer (Ray)
    "perf": {"engine", "compiler", "hil", "cluster"},
    "data": set(),
    "prune": {"engine"},  # the storage format's block sizes
    "quant": {"data", "engine", "prune"},
    "model": {"data", "engine", "prune", "quant"},  # a block type lowers itself to IR
    "qat": {"data", "engine", "prune", "quant", "model"},
    "nas": {
        "data",
        "engine",
        "compiler",
        "hil",
        "cluster",
        "perf",
        "prune",
        "quant",
        "model",
        "qat",
    },
    "cli": {
        "data",
        "engine",
        "compiler",
        "hil",
        "cluster",
        "perf",
        "prune",
        "quant",
        "model",
        "qat",
        "nas",
    },
}


def layer(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "tinyformer"
    if top == "quant" and len(parts) > 2 and parts[2] in QAT:
        return "qat"
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
