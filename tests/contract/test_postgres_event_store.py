"""The event-store contract suite on PostgreSQL (needs ``CQRSKIT_TEST_POSTGRES_URL``)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cqrskit.store import EventRegistry, EventStore, open_event_store
from cqrskit.testing import EventStoreContract, StoreOpener

pytestmark = pytest.mark.postgres


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture
    async def open_store(self, postgres_url: str, pg_schema: str) -> AsyncIterator[StoreOpener]:
        opened: list[EventStore] = []
        separator = "&" if "?" in postgres_url else "?"

        async def opener(registry: EventRegistry) -> EventStore:
            store = await open_event_store(f"{postgres_url}{separator}schema={pg_schema}", registry)
            opened.append(store)
            return store

        yield opener
        for store in opened:
            await store.close()
