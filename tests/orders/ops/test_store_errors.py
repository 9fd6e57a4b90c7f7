"""A store URL the service cannot use is a one-line error from the commands that open
stores (``serve`` too, before uvicorn starts), never a traceback: a bad option exits 2
before anything is opened, an unreachable server exits 1 naming the store."""

from __future__ import annotations

import pytest
from e2e.test_serve import orders

BAD_OPTION = "postgresql://postgres@127.0.0.1:5432/test?schema=never_made&command_timeout=soon"
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/test"


@pytest.mark.parametrize(
    "command",
    [["projections", "status"], ["serve"], ["serve", "--runner-only"]],
    ids=" ".join,
)
@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        (BAD_OPTION, 2, "command_timeout must be a positive number of seconds, not 'soon'"),
        (UNREACHABLE, 1, "could not connect to the PostgreSQL event store"),
    ],
    ids=["bad option", "unreachable"],
)
def test_a_store_url_it_cannot_use_is_a_one_line_error(
    base_env: dict[str, str], command: list[str], url: str, code: int, says: str
) -> None:
    result = orders(*command, env={**base_env, "ORDERS_EVENT_STORE_URL": url}, timeout=30)
    assert result.returncode == code, result.stdout + result.stderr
    assert says in result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
