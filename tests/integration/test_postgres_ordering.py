"""Stress test of the PostgreSQL store's global order (DESIGN.md, mechanism 3).

Sixteen writers append to a small set of streams, single- and multi-stream, many of them
inside transactions that stay open for a random while after their inserts and some that
roll back. Two live readers tail ``read_all`` woken by ``wait_for_events``; they must see
every committed event exactly once and each stream in version order, and nothing rolled
back. A naive ``global_position > last`` reader runs under the same load and must miss
events, which shows the load really commits positions out of order.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import asyncpg
import orjson
import pytest

from cqrskit.errors import ConcurrencyError
from cqrskit.store import ANY, NO_STREAM, START, Position, StreamAppend
from cqrskit.store.postgres import PostgresEventStore
from cqrskit.testing import Noted, contract_registry

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

WRITERS = 16
APPENDS_PER_WRITER = 60
STREAMS = [f"stream-{n:02d}" for n in range(24)]
HELD_OPEN = 0.6  # share of appends run in a transaction held open after its inserts
ROLLED_BACK = 0.15  # share of those transactions that roll back instead of committing


class _RollBack(Exception):
    pass


@dataclass
class Ledger:
    """What the writers did: committed events by text, and texts that were rolled back."""

    committed: dict[str, tuple[str, int]] = field(default_factory=dict)
    rolled_back: set[str] = field(default_factory=set)


@pytest.fixture
async def stores(postgres_url: str, pg_schema: str) -> AsyncIterator[list[PostgresEventStore]]:
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}schema={pg_schema}"
    writer = await PostgresEventStore.open(url, contract_registry(), max_connections=WRITERS + 4)
    reader = await PostgresEventStore.open(url, contract_registry(), max_connections=4)
    yield [writer, reader]
    await writer.close()
    await reader.close()


async def _write(store: PostgresEventStore, number: int, ledger: Ledger) -> None:
    rng = random.Random(number)
    for n in range(APPENDS_PER_WRITER):
        chosen = sorted(rng.sample(STREAMS, rng.choice([1, 1, 1, 2, 3])))
        appends = []
        texts_of: dict[str, list[str]] = {}
        for stream in chosen:
            texts = [f"w{number}.{n}.{stream}.{i}" for i in range(rng.choice([1, 1, 2, 3]))]
            texts_of[stream] = texts
            expected = ANY if rng.random() < 0.5 else await store.stream_version(stream)
            appends.append(StreamAppend(stream, [Noted(text=t) for t in texts], expected))
        try:
            if rng.random() < HELD_OPEN:
                result = await _held_open_append(store, appends, rng)
            else:
                result = await store.append_many(appends)
        except _RollBack:
            ledger.rolled_back.update(t for texts in texts_of.values() for t in texts)
            continue
        except (ConcurrencyError, asyncpg.UniqueViolationError):
            continue
        for stream, texts in texts_of.items():
            first = result.versions[stream] - len(texts) + 1
            for offset, text in enumerate(texts):
                ledger.committed[text] = (stream, first + offset)


async def _held_open_append(
    store: PostgresEventStore, appends: list[StreamAppend], rng: random.Random
) -> object:
    encoded = store._encode(appends)
    async with store._pool.acquire() as conn, conn.transaction():
        result = await store._append_on(conn, encoded, [a.stream_id for a in appends], None)
        await asyncio.sleep(rng.uniform(0, 0.03))
        if rng.random() < ROLLED_BACK:
            raise _RollBack
    return result


async def _tail(
    store: PostgresEventStore, done: asyncio.Future[Position]
) -> list[tuple[Position, str, int, str]]:
    seen: list[tuple[Position, str, int, str]] = []
    after = START
    while True:
        page = await store.read_all(after, limit=250)
        for recorded in page:
            assert recorded.position > after
            after = recorded.position
            seen.append(
                (
                    recorded.position,
                    recorded.stream_id,
                    recorded.version,
                    getattr(recorded.event, "text", ""),
                )
            )
        if page:
            continue
        if done.done() and after >= done.result():
            return seen
        await store.wait_for_events(after, timeout=0.5)


async def _tail_naively(conn: asyncpg.Connection, schema: str, done: asyncio.Event) -> set[str]:
    """Reads ``global_position > last`` as fast as it can: the reader mechanism 3 rejects."""
    seen: set[str] = set()
    last = 0
    while True:
        finished = done.is_set()
        rows = await conn.fetch(
            f'SELECT global_position, data FROM "{schema}".events '
            "WHERE global_position > $1 ORDER BY global_position LIMIT 1000",
            last,
        )
        for position, data in rows:
            last = position
            seen.add(orjson.loads(data)["text"])
        if finished and not rows:
            return seen
        if not rows:
            await asyncio.sleep(0.002)


async def test_readers_see_every_committed_event_once_in_stream_order(
    stores: list[PostgresEventStore], pg_schema: str, postgres_url: str
) -> None:
    writer, reader = stores
    # Create every stream first, so exact expected versions are exercised from the start.
    for stream in STREAMS:
        await writer.append(stream, [Noted(text=f"seed.{stream}")], NO_STREAM)
    ledger = Ledger()
    for stream in STREAMS:
        ledger.committed[f"seed.{stream}"] = (stream, 1)

    loop = asyncio.get_running_loop()
    final: asyncio.Future[Position] = loop.create_future()
    writers_done = asyncio.Event()
    readers = [asyncio.create_task(_tail(reader, final)) for _ in range(2)]
    naive_conn = await asyncpg.connect(postgres_url)
    naive = asyncio.create_task(_tail_naively(naive_conn, pg_schema, writers_done))

    await asyncio.gather(*(_write(writer, n, ledger) for n in range(WRITERS)))
    writers_done.set()
    final.set_result(await reader.head())
    seen_by_readers = await asyncio.wait_for(asyncio.gather(*readers), 30)
    seen_naively = await asyncio.wait_for(naive, 30)
    await naive_conn.close()

    assert ledger.rolled_back, "the load must include rolled-back transactions"
    assert len(ledger.committed) > WRITERS * APPENDS_PER_WRITER // 2
    for seen in seen_by_readers:
        texts = [text for _, _, _, text in seen]
        duplicates = [t for t, count in Counter(texts).items() if count > 1]
        assert not duplicates, f"seen more than once: {duplicates[:5]}"
        assert set(texts) == set(ledger.committed), (
            f"missed {sorted(set(ledger.committed) - set(texts))[:5]}, "
            f"unexpected {sorted(set(texts) - set(ledger.committed))[:5]}"
        )
        assert not ledger.rolled_back & set(texts)
        assert {text: (stream, version) for _, stream, version, text in seen} == ledger.committed
        by_stream: dict[str, list[int]] = {}
        for _, stream, version, _ in seen:
            by_stream.setdefault(stream, []).append(version)
        for stream, versions in by_stream.items():
            assert versions == list(range(1, len(versions) + 1)), stream
        positions = [position for position, _, _, _ in seen]
        assert positions == sorted(positions)
    assert seen_by_readers[0] == seen_by_readers[1]
    missed = set(ledger.committed) - seen_naively
    # The proof that the load exercises the race the xmin rule exists for.
    assert missed, "the naive reader missed nothing: the test did not create the race"
