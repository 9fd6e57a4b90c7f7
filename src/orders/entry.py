"""The ``orders`` script's entry: the command line, or a clear word about a missing extra."""

from __future__ import annotations

import sys

__all__ = ["main"]

_SERVICE_EXTRA = frozenset(
    {"typer", "rich", "uvicorn", "pydantic_settings", "jwt", "httpx", "fastapi", "starlette"}
)
"""Top-level modules that come with ``cqrskit[orders]``, not with cqrskit itself."""


def main() -> None:
    """Run the ``orders`` command line."""
    try:
        from orders.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name not in _SERVICE_EXTRA:
            raise
        sys.exit(
            f"orders needs the service's dependencies ({exc.name} is not installed): "
            'pip install "cqrskit[orders]"'
        )
    cli_main()
