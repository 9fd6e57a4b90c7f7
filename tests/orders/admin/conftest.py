"""The admin endpoints in process, beside the e2e suite's app, on both backends.

``api`` (from the e2e suite) runs the whole app with its projection runner; ``api_only``
is a second app on the same stores without one, as ``orders serve --api-only`` runs
beside a runner process. ``refuse_customers`` makes the read database refuse some
customers the way the operations suite does (a trigger added by hand), so that the
customers projection parks their registrations.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import asyncpg
import httpx
import pytest
from e2e.conftest import Api, api, pg_read_schema, settings
from ops.test_projections import ACCEPT_POSTGRES, ACCEPT_SQLITE, REJECT_POSTGRES, REJECT_SQLITE

from cqrskit.fastapi import app_services
from orders.api import create_app
from orders.bootstrap import Services
from orders.settings import Settings

__all__ = ["Api", "ReadDatabase", "api", "api_only", "pg_read_schema", "settings", "wait_for"]

T = TypeVar("T")
ADMIN = "/api/v1/admin"


async def wait_for(check: Callable[[], Awaitable[T | None]], what: str, timeout: float = 20) -> T:
    """``check()``'s first truthy answer, asked until ``timeout`` runs out."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        answer = await check()
        if answer:
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


class ReadDatabase:
    """The SQL read database of ``settings``, changed by hand as a DBA would."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.on_sqlite = settings.read_db_url is None

    async def run(self, statements: list[str]) -> None:
        if self.on_sqlite:
            # In a thread: the app's runner shares this event loop, and a blocked loop
            # would keep its write transaction open until SQLite gives up waiting.
            await asyncio.to_thread(self._run_sqlite, statements)
            return
        url = urlsplit(str(self.settings.read_db_url))
        (schema,) = parse_qs(url.query)["schema"]
        conn = await asyncpg.connect(url._replace(query="").geturl())
        try:
            await conn.execute(f'SET search_path TO "{schema}"')
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    def _run_sqlite(self, statements: list[str]) -> None:
        with sqlite3.connect(self.settings.data_dir / "read.db", timeout=30) as db:
            for statement in statements:
                db.execute(statement)

    async def refuse_customers(self) -> None:
        """Make the customers read model refuse e-mails starting with ``reject-``."""
        await self.run(REJECT_SQLITE if self.on_sqlite else REJECT_POSTGRES)

    async def accept_customers(self) -> None:
        """Undo :meth:`refuse_customers`: the cause is fixed."""
        await self.run(ACCEPT_SQLITE if self.on_sqlite else ACCEPT_POSTGRES)


@pytest.fixture
def read_db(settings: Settings) -> ReadDatabase:
    return ReadDatabase(settings)


@pytest.fixture
async def api_only(api: Api, settings: Settings) -> AsyncIterator[Api]:
    """A second app on ``api``'s stores that runs no projections."""
    app = create_app(settings, run_projections=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin.test") as client:
            services = app_services(app)
            assert isinstance(services, Services)
            assert services.runner is None
            yield Api(client, services)


async def admin_json(api: Api, path: str, **kwargs: Any) -> Any:
    """GET an admin endpoint as staff, expecting 200."""
    answer = await api.client.get(ADMIN + path, headers=api.staff, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()
