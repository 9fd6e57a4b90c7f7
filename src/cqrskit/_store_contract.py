"""The event-store contract suite: one base class, bound once per backend, made of themed
parts (appends, reads, reads of some event types, bad input) in the modules beside this one."""

from __future__ import annotations

from typing import ClassVar

import pytest

from cqrskit._store_contract_appends import _AppendContract
from cqrskit._store_contract_input import BadInputContract
from cqrskit._store_contract_kit import StoreOpener, contract_registry
from cqrskit._store_contract_reads import _ReadContract
from cqrskit._store_contract_types import _TypesContract
from cqrskit.store.base import EventStore


class EventStoreContract(_AppendContract, _ReadContract, _TypesContract, BadInputContract):
    """What every event store must do. Bind it once per backend::

    class TestMyStore(EventStoreContract):
        @pytest.fixture
        async def open_store(self) -> AsyncIterator[StoreOpener]:
            ...  # yield an opener whose stores share one empty database; close them after
    """

    concurrent_writers: ClassVar[int] = 50

    @pytest.fixture
    def open_store(self) -> StoreOpener:
        """Bind this fixture: it returns an opener of stores that share one database."""
        raise NotImplementedError("bind open_store for your backend")

    @pytest.fixture
    async def store(self, open_store: StoreOpener) -> EventStore:
        return await open_store(contract_registry())
