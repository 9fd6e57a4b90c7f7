"""``orders projections status`` tells a faulted projection by its exit code, not only in red.

Scripts and health checks run the command and read its exit code; no running server is
needed for that, only the status record a runner publishes into the read store.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from e2e.test_serve import orders

from cqrskit.projection import ProjectionState, ProjectionStatus
from cqrskit.projection.control import REPORT, encode_status
from orders.bootstrap import open_services
from orders.settings import Settings


def publish(data_dir: Path, name: str, state: ProjectionState, error: str | None) -> None:
    """Write the status record that the active runner of ``name`` would publish."""

    async def run() -> None:
        settings = Settings(data_dir=data_dir)
        async with open_services(settings, run_projections=False) as services:
            status = ProjectionStatus(
                name=name,
                version=1,
                state=state,
                checkpoint=None,
                events_behind=0,
                seconds_behind=0.0,
                parked=0,
                last_error=error,
            )
            await services.read_stores[name].put_control(
                name, REPORT, encode_status(status, "runner-host:4242")
            )

    asyncio.run(run())


def test_status_exits_1_when_a_projection_is_faulted(base_env: dict[str, str]) -> None:
    data_dir = Path(base_env["ORDERS_DATA_DIR"])
    publish(data_dir, "customers", ProjectionState.LIVE, None)

    healthy = orders("projections", "status", env=base_env)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr

    publish(data_dir, "sales_report", ProjectionState.FAULTED, "ZeroDivisionError: boom")

    table = orders("projections", "status", env={**base_env, "COLUMNS": "250"})
    assert table.returncode == 1, table.stdout + table.stderr
    assert "ZeroDivisionError: boom" in table.stdout
    as_json = orders("projections", "status", "--json", env=base_env)
    assert as_json.returncode == 1, as_json.stderr
    statuses = {s["name"]: s for s in json.loads(as_json.stdout)}
    assert statuses["sales_report"]["faulted"] is True
    assert statuses["sales_report"]["state"] == "faulted"
    assert statuses["customers"]["faulted"] is False
