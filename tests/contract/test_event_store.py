"""The event-store contract suite, bound once per backend."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from cqrskit.store import EventRegistry, EventStore, MemoryEventStore, MemoryStorage
from cqrskit.store.sqlite import SqliteEventStore
from cqrskit.testing import EventStoreContract, StoreOpener


class TestMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def open_store(self) -> StoreOpener:
        storage = MemoryStorage()

        async def opener(registry: EventRegistry) -> EventStore:
            return MemoryEventStore(registry, storage)

        return opener


class TestSqliteEventStore(EventStoreContract):
    @pytest.fixture
    async def open_store(self, tmp_path: Path) -> AsyncIterator[StoreOpener]:
        opened: list[EventStore] = []

        async def opener(registry: EventRegistry) -> EventStore:
            store = await SqliteEventStore.open(tmp_path / "events.db", registry)
            opened.append(store)
            return store

        yield opener
        for store in opened:
            await store.close()
