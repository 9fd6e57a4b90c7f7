"""Fixtures shared by the integration tests of the PostgreSQL event store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from cqrskit.store.postgres import PostgresEventStore
from cqrskit.testing import contract_registry


@pytest.fixture
async def open_pg(
    postgres_url: str, pg_schema: str
) -> AsyncIterator[Callable[..., Awaitable[PostgresEventStore]]]:
    """Opens PostgreSQL event stores on the test's schema (keyword arguments go to
    ``PostgresEventStore.open``) and closes them after the test."""
    opened: list[PostgresEventStore] = []

    async def opener(**options: object) -> PostgresEventStore:
        store = await PostgresEventStore.open(
            f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={pg_schema}",
            contract_registry(),
            **options,  # type: ignore[arg-type]
        )
        opened.append(store)
        return store

    yield opener
    for store in opened:
        await store.close()
