"""The package's import graph, read statically (ast): for the cycle and architecture tests.

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


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(tree: ast.AST, name: str, is_package: bool, modules: set[str]) -> set[str]:
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
        name: imports_of(ast.parse(p.read_text(), str(p)), name, p.name == "__init__.py", modules)
        for name, p in paths.items()
    }
