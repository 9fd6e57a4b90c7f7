"""The example uses cqrskit's public API only: every name it imports from cqrskit is in
the ``__all__`` of a public module. (import-linter checks modules, not names: it cannot
see ``from cqrskit.store import SqliteEventStore`` go past the exported list.)"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parent.parent
PUBLIC_MODULES = {
    "cqrskit",
    "cqrskit.consistency",
    "cqrskit.errors",
    "cqrskit.fastapi",
    "cqrskit.projection",
    "cqrskit.projection.testing",
    "cqrskit.readstore",
    "cqrskit.store",
    "cqrskit.testing",
}
"""The modules whose ``__all__`` make up the public API (docs/reference.md lists them)."""


def cqrskit_imports() -> list[tuple[str, int, str, str | None]]:
    """(file, line, module, name) of every import from cqrskit in the example."""
    found: list[tuple[str, int, str, str | None]] = []
    for path in sorted(EXAMPLE.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = str(path.relative_to(EXAMPLE))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
                "cqrskit",
                "orders",
            ):
                found += [(where, node.lineno, node.module or "", a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found += [
                    (where, node.lineno, a.name, None)
                    for a in node.names
                    if a.name.split(".")[0] in ("cqrskit", "orders")
                ]
    return found


def test_the_example_imports_from_cqrskit() -> None:
    assert len(cqrskit_imports()) > 20


@pytest.mark.parametrize(("where", "line", "module", "name"), cqrskit_imports())
def test_every_imported_name_is_exported(
    where: str, line: int, module: str, name: str | None
) -> None:
    assert module in PUBLIC_MODULES, f"{where}:{line} imports {module}, not a public module"
    if name is not None:
        exported = importlib.import_module(module).__all__
        assert name in exported, f"{where}:{line}: {name} is not in {module}.__all__"
