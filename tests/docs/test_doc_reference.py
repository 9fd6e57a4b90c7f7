"""docs/reference.md is what docs/make_reference.py makes of today's docstrings."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from docs_support import ROOT


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_reference", ROOT / "docs/make_reference.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_is_up_to_date() -> None:
    expected = _generator().render()
    assert (ROOT / "docs/reference.md").read_text() == expected, (
        "docs/reference.md is out of date: run `.venv/bin/python docs/make_reference.py`"
    )


def test_the_reference_lists_every_public_name() -> None:
    generator = _generator()
    text = (ROOT / "docs/reference.md").read_text()
    for module_name in generator.MODULES:
        module = importlib.import_module(module_name)
        section = text.split(f"## `{module_name}`\n", 1)[1].split("\n## ", 1)[0]
        for name in module.__all__:
            assert f"| `{name}` |" in section, f"{module_name}.{name} is missing"
