"""cqrskit.fastapi's dependencies run on the event loop: FastAPI sends a plain-function
dependency to its thread pool, a thread hop on every request for what is a lookup."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI

from cqrskit import CommandBus, EventRegistry, QueryBus, Repository
from cqrskit.fastapi import (
    CommandBusDep,
    CqrsServices,
    QueryBusDep,
    ServicesDep,
    cqrs_lifespan,
    if_match_version,
)
from cqrskit.store import MemoryEventStore


async def test_no_request_goes_through_the_thread_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_thread_pool(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a dependency ran in the thread pool")

    monkeypatch.setattr("fastapi.dependencies.utils.run_in_threadpool", no_thread_pool)

    @contextlib.asynccontextmanager
    async def services() -> AsyncIterator[CqrsServices]:
        store = MemoryEventStore(EventRegistry())
        yield CqrsServices(command_bus=CommandBus(Repository(store)), query_bus=QueryBus())

    app = FastAPI(lifespan=cqrs_lifespan(services))

    @app.post("/things")
    async def change(
        commands: CommandBusDep,
        queries: QueryBusDep,
        all_services: ServicesDep,
        expected: Annotated[int | None, Depends(if_match_version)],
    ) -> dict[str, Any]:
        assert all_services.command_bus is commands
        assert all_services.query_bus is queries
        return {"expected": expected}

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            answer = await client.post("/things", headers={"If-Match": '"3"'})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"expected": 3}
