"""Reading the documentation: its fenced code blocks and the comments that mark them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
"""The repository."""

_FENCE = re.compile(r"^```(\w*)\s*$")
_MARK = re.compile(r"^<!--\s*(.*?)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One fenced code block: where it is, its language, its code and its marker comment."""

    path: Path
    line: int
    language: str
    code: str
    mark: str
    """The HTML comment on the line right before the fence ("" when none)."""

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def code_blocks(path: Path) -> list[Block]:
    """Every fenced code block of a Markdown file, in order."""
    lines = path.read_text().splitlines()
    blocks = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        mark = _MARK.match(lines[index - 1].strip()) if index else None
        end = index + 1
        while not lines[end].startswith("```"):
            end += 1
        blocks.append(
            Block(
                path,
                index + 1,
                opening.group(1),
                "\n".join(lines[index + 1 : end]) + "\n",
                mark.group(1) if mark else "",
            )
        )
        index = end + 1
    return blocks
