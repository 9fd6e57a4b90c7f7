"""``ORDERS_LOG_FORMAT=json``: one JSON object per line, with the bus's structured fields."""

from __future__ import annotations

import json
import uuid

import pytest
from e2e.test_serve import orders
from typer.testing import CliRunner

from ops.conftest import Service, wait_until
from orders.cli import app

pytestmark = pytest.mark.slow


def test_json_logs_carry_the_correlation_id_of_a_command(service: Service) -> None:
    correlation = str(uuid.uuid4())
    service.register(**{"X-Correlation-Id": correlation})

    def handled() -> dict[str, object] | None:
        for line in service.log_lines():
            record = json.loads(line)
            if record.get("correlation_id") == correlation:
                return dict(record)
        return None

    record = wait_until(handled, "the command's log line")
    assert record["message_type"] == "RegisterCustomer"
    assert record["outcome"] == "ok"
    assert isinstance(record["duration_ms"], float)
    assert record["logger"] == "cqrskit.bus"
    assert record["level"] == "info"
    assert {"time", "message", "message_id"} <= record.keys()
    access = [json.loads(line) for line in service.log_lines() if "uvicorn.access" in line]
    assert any(a["path"] == "/api/v1/customers" and a["status"] == 201 for a in access)


def test_a_bad_log_format_is_a_one_line_error(base_env: dict[str, str]) -> None:
    result = orders("projections", "status", env={**base_env, "ORDERS_LOG_FORMAT": "xml"})
    assert result.returncode == 2
    assert "ORDERS_LOG_FORMAT" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


@pytest.mark.parametrize(
    "command",
    [
        ["projections"],
        ["projections", "status"],
        ["projections", "parked"],
        ["projections", "retry"],
        ["projections", "discard"],
        ["projections", "rebuild"],
        ["events"],
        ["events", "show"],
        ["events", "tail"],
    ],
)
def test_help_says_what_each_command_does(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    head = [line.strip() for line in result.output.split("╭")[0].splitlines() if line.strip()]
    assert head[0].startswith("Usage: orders " + " ".join(command))
    assert len(" ".join(head[1:])) > 40, result.output  # what it does, before the options
