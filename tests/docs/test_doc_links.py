"""Every link of README.md and docs/*.md stays inside the repository and finds its file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_support import ROOT, code_blocks

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# [text](target) and <a href="target">, outside code blocks.
_LINK = re.compile(r"\]\(([^)\s]+)\)|href=\"([^\"]+)\"")


def _prose(path: Path) -> str:
    text = path.read_text()
    for block in code_blocks(path):
        text = text.replace(block.code, "")
    return text


def _links(path: Path) -> list[str]:
    return [a or b for a, b in _LINK.findall(_prose(path))]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve_to_files_in_the_repository(document: Path) -> None:
    for link in _links(document):
        assert "://" not in link, f"{document.name} links outside the repository: {link}"
        assert not link.startswith("mailto:"), f"{document.name} links to {link}"
        target = link.split("#", 1)[0]
        if not target:
            continue  # a link to a heading of the same page
        resolved = (document.parent / target).resolve()
        assert resolved.is_relative_to(ROOT), f"{document.name}: {link} leaves the repository"
        assert resolved.exists(), f"{document.name}: {link} does not exist"


def test_the_readme_links_every_user_document() -> None:
    links = set(_links(ROOT / "README.md"))
    for page in ("guide", "reference", "architecture", "projections", "fastapi"):
        assert f"docs/{page}.md" in links, page
