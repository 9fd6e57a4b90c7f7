"""SqlReadStore.live_tables: the tables of the version readers use, through a switch."""

from __future__ import annotations

import pytest

from cqrskit.projection.testing import SqlHarness
from cqrskit.readstore import SqlReadStore


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest) -> SqlReadStore:
    name = "sqlite_read_store" if request.param == "sqlite" else "pg_read_store"
    result: SqlReadStore = request.getfixturevalue(name)
    return result


async def test_live_tables_follow_the_live_version(store: SqlReadStore) -> None:
    harness = SqlHarness(store)
    assert await store.live_tables("tally") == {}
    first, second = harness.tally(version=1), harness.tally(version=2)
    for projection in (first, second):
        await store.prepare(projection, projection.setup)
    assert await store.live_tables("tally") == {"counts": "tally__counts_v1"}
    async with store.transaction(second, None) as tx:
        tx.go_live()
    assert await store.live_tables("tally") == {"counts": "tally__counts_v2"}
