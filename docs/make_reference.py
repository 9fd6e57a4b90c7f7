"""Write docs/reference.md: every public name of cqrskit with the first line of its docstring.

Run it after changing a public module's ``__all__`` or a docstring; a test fails while
the reference is out of date:

    .venv/bin/python docs/make_reference.py
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
import sys
import typing
from pathlib import Path
from types import ModuleType

MODULES = [
    "cqrskit",
    "cqrskit.errors",
    "cqrskit.store",
    "cqrskit.readstore",
    "cqrskit.projection",
    "cqrskit.consistency",
    "cqrskit.fastapi",
    "cqrskit.testing",
    "cqrskit.projection.testing",
]
"""The public modules: what users import, in the order the reference shows them."""

REFERENCE = Path(__file__).resolve().parent / "reference.md"

HEADER = """\
# API reference

Every public name of cqrskit: the `__all__` of each module below, with the first line of
its docstring. Anything else is internal and may change. Generated from the docstrings by
`python docs/make_reference.py` (a test fails when this page is out of date); the
[guide](guide.md) shows the names at work.
"""


_ROLE = re.compile(r":\w+:`~?(?:[\w.]*\.)?([\w]+)`")


def first_line(doc: str | None) -> str:
    """The summary of a docstring, its first paragraph on one line, in Markdown."""
    if not doc:
        return ""
    summary = inspect.cleandoc(doc).split("\n\n")[0].replace("\n", " ").strip()
    return _ROLE.sub(r"`\1`", summary).replace("``", "`")


def _attribute_docs(module: ModuleType) -> dict[str, str]:
    """Docstrings written under module-level assignments (``NAME = ...`` then a string)."""
    try:
        tree = ast.parse(inspect.getsource(module))
    except (OSError, TypeError):
        return {}
    docs: dict[str, str] = {}
    for node, after in zip(tree.body, tree.body[1:], strict=False):
        targets = (
            [t.id for t in node.targets if isinstance(t, ast.Name)]
            if isinstance(node, ast.Assign)
            else [node.target.id]
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
            else []
        )
        if (
            targets
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            for target in targets:
                docs[target] = first_line(after.value.value)
    return docs


def _kind(value: object) -> str:
    if inspect.isclass(value):
        return "exception" if issubclass(value, BaseException) else "class"
    if inspect.isfunction(value) or inspect.isbuiltin(value):
        return "function"
    if typing.get_origin(value) is not None:
        return "type alias"
    return "constant"


def purpose(module: ModuleType, name: str, value: object) -> str:
    """One line on what ``name`` (exported by ``module``) is for."""
    if inspect.isclass(value) or inspect.isfunction(value):
        return first_line(value.__doc__)
    # A constant or type alias has no __doc__ of its own: look for the string under its
    # assignment, in the exporting module and then in every cqrskit module loaded.
    candidates = [module] + [
        m for n, m in sorted(sys.modules.items()) if n.startswith("cqrskit") and m is not module
    ]
    for candidate in candidates:
        found = _attribute_docs(candidate).get(name)
        if found:
            return found
    # Undocumented constants still get a line: their value says what they are.
    if isinstance(value, str):
        return f'The string `"{value}"`.'
    return f"Type alias: `{_alias(value)}`."


def _alias(value: object) -> str:
    return repr(value).replace("collections.abc.", "").replace("typing.", "")


def render() -> str:
    """The text of docs/reference.md."""
    parts = [HEADER]
    missing = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        parts.append(f"\n## `{module_name}`\n\n{first_line(module.__doc__)}\n\n")
        parts.append("| name | kind | purpose |\n| --- | --- | --- |\n")
        for name in module.__all__:
            value = getattr(module, name)
            line = purpose(module, name, value)
            if not line:
                missing.append(f"{module_name}.{name}")
            cell = line.replace("|", "\\|")
            parts.append(f"| `{name}` | {_kind(value)} | {cell} |\n")
    if missing:
        raise SystemExit(f"public names without a docstring: {', '.join(missing)}")
    return "".join(parts)


if __name__ == "__main__":
    REFERENCE.write_text(render())
    print(f"wrote {REFERENCE}")
