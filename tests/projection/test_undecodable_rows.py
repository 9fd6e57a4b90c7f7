"""Rows of the SQLite and PostgreSQL event stores corrupted with SQL: the runner parks
exactly them, projects everything around them, and applies them once fixed."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from cqrskit import EventDecodeError, UnknownEventType
from cqrskit.projection import FailurePolicy, ProjectionRunner, ProjectionState
from cqrskit.projection.testing import (
    Ignored,
    SqlHarness,
    Ticked,
    append_ticks,
    eventually,
    tick_registry,
)
from cqrskit.readstore import SqlReadStore, open_sql_read_store
from cqrskit.store import EventStore, Position, SqliteEventStore, open_event_store


class Renamed(Ticked):
    """A tick under a name whose stored payloads are of an older schema, upcaster missing."""

    event_type = "undecodable-rows.Renamed"
    schema_version = 2


Execute = Callable[[str, tuple[Any, ...]], Awaitable[None]]


@dataclass
class Backend:
    events: EventStore
    execute: Execute
    """Runs SQL against the events table, written ``{events}``, ``?`` placeholders."""


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    registry = tick_registry()
    registry.register(Renamed)
    if request.param == "sqlite":
        path = str(tmp_path / "events.db")
        events: EventStore = await SqliteEventStore.open(path, registry)

        async def execute(sql: str, params: tuple[Any, ...]) -> None:
            with sqlite3.connect(path) as db:
                db.execute(sql.format(events="events"), params)

        yield Backend(events, execute)
    else:
        url = request.getfixturevalue("postgres_url")
        schema = f"t_{uuid.uuid4().hex[:16]}"
        events = await open_event_store(f"{url}?schema={schema}", registry)

        async def execute(sql: str, params: tuple[Any, ...]) -> None:
            numbered = sql.format(events=f'"{schema}".events')
            for n in range(1, len(params) + 1):
                numbered = numbered.replace("?", f"${n}", 1)
            conn = await asyncpg.connect(url)
            try:
                await conn.execute(numbered, *params)
            finally:
                await conn.close()

        yield Backend(events, execute)
        await events.close()
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
        return
    await events.close()


@pytest.fixture
async def read_store(tmp_path: Path) -> AsyncIterator[SqlReadStore]:
    store: SqlReadStore = await open_sql_read_store(f"sqlite:///{tmp_path}/read.db")
    yield store
    await store.close()


async def _tick(events: EventStore, stream: str, label: str) -> tuple[str, int, Position]:
    result = await events.append(stream, [Ticked(label=label)])
    return stream, result.version, result.position


def _runner(events: EventStore) -> ProjectionRunner:
    return ProjectionRunner(
        events, batch_size=5, idle_wait=0.5, lease_retry=0.05, registry=CollectorRegistry()
    )


async def test_corrupted_rows_are_parked_the_rest_projected_and_retried_once_fixed(
    backend: Backend, read_store: SqlReadStore
) -> None:
    events, execute = backend.events, backend.execute
    streams = ["a", "b", "c"]
    await append_ticks(events, streams, 2)
    retyped = await _tick(events, "b", "retyped")
    await append_ticks(events, streams, 1)
    wrong = await _tick(events, "c", "wrong")
    ignored = await events.append("a", [Ignored()])
    await append_ticks(events, streams, 2)
    where = "WHERE stream_id = ? AND version = ?"
    # An event type renamed by a release whose upcaster for the old payloads is missing.
    await execute("UPDATE {events} SET event_type = ? " + where, (Renamed.event_type, *retyped[:2]))
    # A payload of the wrong type (a bad data migration).
    await execute("""UPDATE {events} SET data = '{{"label": 12}}' """ + where, wrong[:2])
    # A broken event the tally does not consume: not its problem.
    await execute("""UPDATE {events} SET data = '{{"x": null}}' """ + where, ("a", ignored.version))

    harness = SqlHarness(read_store)
    runner = _runner(events)
    policy = FailurePolicy(retries=1, backoff=0.001, then="park")
    runner.add(harness.tally(policy=policy), read_store)
    async with runner:
        assert (await runner.wait_for("tally", await events.head(), timeout=10)).reached
        assert await harness.counts() == dict.fromkeys(streams, 5)
        parked = await runner.parked("tally")
        assert [p.id for p in parked] == [str(retyped[2]), str(wrong[2])]
        renamed, bad = parked
        assert (renamed.event_type, renamed.schema_version) == (Renamed.event_type, 1)
        assert renamed.undecodable
        assert "retyped" in (renamed.data or "")
        assert "UnknownStoredEventType" in renamed.error
        assert "schema version 1" in renamed.error
        assert (bad.stream_id, bad.stream_version, bad.event_type) == ("c", 4, Ticked.event_type)
        assert bad.data is not None
        assert '"label"' in bad.data
        assert "12" in bad.data
        assert "EventDecodeError" in bad.error
        assert "valid string" in bad.error
        assert runner.status("tally").parked == 2
        assert ignored.position not in {p.position for p in parked}
        await eventually(lambda: runner.status("tally").state is ProjectionState.LIVE)

        # Still broken: each stays parked, with the new error.
        with pytest.raises(UnknownEventType):
            await runner.retry_parked("tally", renamed.id)
        with pytest.raises(EventDecodeError):
            await runner.retry_parked("tally", bad.id)
        assert [p.attempts for p in await runner.parked("tally")] == [3, 3]

        # The fixes: an upcaster deployed, the row repaired.
        events.registry.add_upcaster(Renamed.event_type, 1, lambda payload: payload)  # type: ignore[attr-defined]
        await execute("""UPDATE {events} SET data = '{{"label": "fixed"}}' """ + where, wrong[:2])
        await runner.retry_parked("tally", renamed.id)
        await runner.retry_parked("tally", bad.id)
        assert await runner.parked("tally") == []
        assert runner.status("tally").parked == 0
    assert await harness.counts() == {"a": 5, "b": 6, "c": 6}


async def test_an_older_parked_events_table_gets_the_raw_columns(tmp_path: Path) -> None:
    path = tmp_path / "read.db"
    with sqlite3.connect(path) as db:
        db.execute(
            "CREATE TABLE cqrskit_parked_events (projection TEXT NOT NULL, "
            "version INTEGER NOT NULL, commit_id BIGINT NOT NULL, seq BIGINT NOT NULL, "
            "stream_id TEXT NOT NULL, stream_version BIGINT NOT NULL, "
            "event_type TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL, "
            "parked_at TEXT NOT NULL, PRIMARY KEY (projection, version, commit_id, seq))"
        )
        db.execute(
            "INSERT INTO cqrskit_parked_events VALUES "
            "('tally', 1, 0, 3, 's', 1, 't', 'old error', 2, '2024-01-01T00:00:00+00:00')"
        )
    store = await open_sql_read_store(f"sqlite:///{path}")
    try:
        [old] = await store.parked_events("tally", 1)
        assert (old.error, old.data, old.undecodable) == ("old error", None, False)
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        columns = {r[1] for r in db.execute("PRAGMA table_info(cqrskit_parked_events)")}
    assert {"schema_version", "data", "metadata"} <= columns
