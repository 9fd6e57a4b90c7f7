"""The library's read models pass cqrskit's projection check on every store they run on
(the same model in any batch size, after a replay and after a rebuild), and answer what
the month at the desk says they should."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from library_support import BELOVED, DUNE, EMMA, busy_month

from cqrskit import ReadStore
from cqrskit.projection.testing import check_projection
from cqrskit.readstore import (
    RedisReadStore,
    SqlReadStore,
    open_redis_read_store,
    open_sql_read_store,
)
from cqrskit.store import MemoryEventStore
from library.bootstrap import event_registry
from library.projections import (
    CatalogRedisProjection,
    CatalogSqlProjection,
    LoansProjection,
    RedisCatalogReader,
    SqlCatalogReader,
    SqlLoanReader,
)

Opener = Callable[[], Awaitable[ReadStore[Any]]]


@pytest.fixture
async def month() -> AsyncIterator[tuple[MemoryEventStore, dict[str, str]]]:
    events = MemoryEventStore(event_registry())
    members = await busy_month(events)
    yield events, members
    await events.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def open_sql(request: pytest.FixtureRequest, tmp_path: Path) -> Opener:
    """Opens a new, empty SQL read store each call (check_projection opens two)."""
    if request.param == "sqlite":
        urls = iter(f"sqlite:///{tmp_path}/read-{n}.db" for n in range(2))
    else:
        server: str = request.getfixturevalue("postgres_url")
        schemas = (request.getfixturevalue("pg_schema"), request.getfixturevalue("pg_read_schema"))
        urls = iter(f"{server}?schema={schema}" for schema in schemas)

    async def open_store() -> ReadStore[Any]:
        return await open_sql_read_store(next(urls))

    return open_store


async def loans_answers(store: ReadStore[Any]) -> Any:
    assert isinstance(store, SqlReadStore)
    reader = SqlLoanReader(store)
    rows = await store.query("loans", "SELECT member_id FROM {members} ORDER BY member_id")
    members = [await reader.member(row["member_id"]) for row in rows]
    loans = [await reader.member_loans(row["member_id"]) for row in rows]
    reports = [await reader.overdue(date(2026, 4, day)) for day in (1, 10, 30)]
    return members, loans, reports


async def test_loans_projection(month: Any, open_sql: Opener) -> None:
    events, members = month
    members_seen, loans, reports = await check_projection(
        lambda version: LoansProjection(version=version), open_sql, events, loans_answers
    )
    by_name = {m.name: m for m in members_seen}
    assert {name: m.open_loans for name, m in by_name.items()} == {
        "Ada": 2,
        "Bob": 1,
        "Cy": 0,
        "Dee": 1,
    }
    first_of_april = reports[0]
    assert [(o.member_name, o.copy_id, o.days_overdue) for o in first_of_april.loans] == [
        ("Ada", "D-1", 10),
        ("Ada", "E-1", 1),
    ]
    assert [(o.member_name, o.copy_id) for o in reports[1].loans] == [
        ("Ada", "D-1"),
        ("Ada", "E-1"),
        ("Dee", "E-2"),
    ]
    cys_loans = next(ls for ls in loans if ls and ls[0].member_id == members["Cy"])
    assert [(loan.copy_id, loan.days_late, loan.returned_on) for loan in cys_loans] == [
        ("B-1", 3, date(2026, 3, 25))
    ]


EXPECTED_CATALOG = [
    (EMMA, "Emma", 2, 0),
    (DUNE, "Dune", 2, 0),
    (BELOVED, "Beloved", 1, 1),
    None,
]


async def catalog_answers(reader: SqlCatalogReader | RedisCatalogReader) -> Any:
    views = [await reader.title(t) for t in (EMMA, DUNE, BELOVED, "0000000000")]
    return [None if v is None else (v.title_id, v.name, v.copies, v.available) for v in views]


async def test_catalog_in_sql(month: Any, open_sql: Opener) -> None:
    events, _ = month

    async def answers(store: ReadStore[Any]) -> Any:
        assert isinstance(store, SqlReadStore)
        return await catalog_answers(SqlCatalogReader(store))

    final = await check_projection(
        lambda version: CatalogSqlProjection(version=version), open_sql, events, answers
    )
    assert final == EXPECTED_CATALOG


@pytest.mark.redis
async def test_catalog_in_redis_answers_like_sql(
    month: Any, redis_url: str, redis_prefix: str
) -> None:
    events, _ = month
    prefixes = iter(f"{redis_prefix}{n}:" for n in range(2))

    async def open_store() -> ReadStore[Any]:
        return await open_redis_read_store(f"{redis_url}?prefix={next(prefixes)}")

    async def answers(store: ReadStore[Any]) -> Any:
        assert isinstance(store, RedisReadStore)
        return await catalog_answers(RedisCatalogReader(store))

    final = await check_projection(
        lambda version: CatalogRedisProjection(version=version), open_store, events, answers
    )
    assert final == EXPECTED_CATALOG
