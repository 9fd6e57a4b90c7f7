"""Every Python block of README.md and docs/guide.md runs, as a complete program.

Each block runs in a subprocess of its own, in an empty temporary directory, with the
library example (examples/library) importable, as a reader who saved it to a file would
run it. A block may carry a marker, an HTML comment on the line before its fence:

- ``<!-- servers: postgres redis -->``: it needs those servers; it gets the
  ``LIBRARY_*`` variables pointing at the test servers (a fresh schema and key prefix)
  and skips, or fails under CQRSKIT_REQUIRE_SERVERS, where they are not configured;
- ``<!-- fragment: why -->``: it cannot run alone, and says why; it is not run.

The guide shows the example's code: every class and function a guide block defines
under a name the example uses must be the example's definition, token for token.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
from docs_support import ROOT, Block, code_blocks

DOCUMENTS = [ROOT / "README.md", ROOT / "docs" / "guide.md"]
EXAMPLE = ROOT / "examples" / "library"
BLOCKS = [b for doc in DOCUMENTS for b in code_blocks(doc) if b.language == "python"]


def test_the_documents_have_python_blocks() -> None:
    assert len([b for b in BLOCKS if b.path.name == "guide.md"]) >= 9
    assert [b for b in BLOCKS if b.path.name == "README.md"]


def test_every_marker_is_known_and_fragments_say_why() -> None:
    for block in BLOCKS:
        kind, _, rest = block.mark.partition(":")
        assert kind in ("", "servers", "fragment"), f"{block.id}: unknown marker {block.mark!r}"
        if kind == "fragment":
            assert rest.strip(), f"{block.id}: a fragment marker must say why it cannot run"


def _environment(block: Block, request: pytest.FixtureRequest) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIBRARY_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(EXAMPLE), env.get("PYTHONPATH")]))
    if block.mark.startswith("servers:"):
        servers = block.mark.split(":", 1)[1].split()
        if "postgres" in servers:
            # Events and read models share the test's schema: their tables never meet.
            url = f"{request.getfixturevalue('postgres_url')}?schema="
            url += request.getfixturevalue("pg_schema")
            env["LIBRARY_EVENT_STORE_URL"] = env["LIBRARY_READ_DB_URL"] = url
        if "redis" in servers:
            prefix = request.getfixturevalue("redis_prefix")
            env["LIBRARY_REDIS_URL"] = f"{request.getfixturevalue('redis_url')}?prefix={prefix}"
    return env


@pytest.mark.parametrize("block", BLOCKS, ids=[b.id for b in BLOCKS])
def test_the_block_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if block.mark.startswith("fragment:"):
        pytest.skip(f"a fragment: {block.mark.split(':', 1)[1].strip()}")
    program = tmp_path / "snippet.py"
    program.write_text(block.code)
    done = subprocess.run(
        [sys.executable, str(program)],
        cwd=tmp_path,
        env=_environment(block, request),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    return {
        node.name: node
        for node in tree.body
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    }


def _example_definitions() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in EXAMPLE.rglob("*.py"):
        if path.name == "__main__.py":  # its main() is not one the guide could show
            continue
        for name, node in _definitions(ast.parse(path.read_text())).items():
            found.setdefault(name, []).append(ast.dump(node))
    return found


GUIDE_BLOCKS = [b for b in BLOCKS if b.path.name == "guide.md"]


@pytest.mark.parametrize("block", GUIDE_BLOCKS, ids=[b.id for b in GUIDE_BLOCKS])
def test_the_guide_shows_the_examples_code(block: Block) -> None:
    example = _example_definitions()
    for name, node in _definitions(ast.parse(block.code)).items():
        if name in example:
            assert ast.dump(node) in example[name], (
                f"{block.id}: {name} differs from its definition in examples/library"
            )


def test_the_guide_shows_most_of_its_code_from_the_example() -> None:
    example = _example_definitions()
    shown = {n for b in GUIDE_BLOCKS for n in _definitions(ast.parse(b.code)) if n in example}
    assert len(shown) >= 15, shown
