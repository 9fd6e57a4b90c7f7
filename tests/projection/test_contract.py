"""The projection contract suite (with control records), bound once per read store."""

from __future__ import annotations

from typing import Any

import pytest

from cqrskit.projection.testing import (
    MemoryHarness,
    ReadModelHarness,
    RedisHarness,
    SqlHarness,
)
from cqrskit.projection.testing_control import ControlContract
from cqrskit.readstore import MemoryReadStore, RedisReadStore, SqlReadStore


class TestMemoryReadStore(ControlContract):
    @pytest.fixture
    def harness(self) -> ReadModelHarness[Any]:
        return MemoryHarness(MemoryReadStore())


class TestSqliteReadStore(ControlContract):
    @pytest.fixture
    def harness(self, sqlite_read_store: SqlReadStore) -> ReadModelHarness[Any]:
        return SqlHarness(sqlite_read_store)


@pytest.mark.postgres
class TestPostgresReadStore(ControlContract):
    @pytest.fixture
    def harness(self, pg_read_store: SqlReadStore) -> ReadModelHarness[Any]:
        return SqlHarness(pg_read_store)


@pytest.mark.redis
class TestRedisReadStore(ControlContract):
    @pytest.fixture
    def harness(self, redis_read_store: RedisReadStore) -> ReadModelHarness[Any]:
        return RedisHarness(redis_read_store)
