"""Check a read model against the events: rebuild it beside the live one and compare.

:func:`verify_projection` reads the live version of a projection (its rows or keys,
together with its checkpoint, as of one moment), builds a *scratch* version of the same
projection from the event store up to exactly that checkpoint, compares the two row by
row (SQL) or key by key (Redis), and drops the scratch version again, also on an error
or cancellation. The live version and the runner that keeps it are left alone: the
scratch version has a version number no runner uses and readers never see it.

The parts are public too: :func:`scratch_version`, :func:`build_until`,
:func:`read_version` and :func:`compare`.
"""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from cqrskit.errors import CqrsError
from cqrskit.projection.base import Projection
from cqrskit.readstore.base import (
    MAX_TABLE_NAME_BYTES,
    CheckpointConflict,
    ProjectionSpec,
    ReadStore,
    physical_table,
)
from cqrskit.readstore.redis import RedisReadStore
from cqrskit.readstore.sql import SqlReadStore, SqlSnapshot
from cqrskit.store.base import EventStore, Position, RecordedEvent
from cqrskit.store.serialization import UndecodableEvent

__all__ = [
    "PARKED",
    "Difference",
    "VerifyError",
    "VerifyReport",
    "VersionContents",
    "build_until",
    "compare",
    "read_version",
    "scratch_version",
    "verify_projection",
]

P = TypeVar("P", bound=Projection[Any])

PARKED: Final = "(parked)"
"""The ``table`` of a difference in which events are parked (one side parked an event,
the other handled it)."""

_MAX_VERSION: Final = 2**31 - 1
"""SQL read stores keep version numbers in 32-bit INTEGER columns."""


class VerifyError(CqrsError):
    """The comparison could not be made (no live version, or it kept changing)."""


@dataclass(frozen=True, slots=True)
class Difference:
    """One place where the live read model disagrees with a rebuild from the events.

    ``table`` is the logical table (SQL; :data:`PARKED` for parked events) and ``key``
    the row's primary key as ``column=value`` pairs (the whole row for a table without
    one). On Redis ``table`` is ``""`` and ``key`` the key below the version's prefix.
    ``expected`` is what the rebuild holds, ``actual`` what the live model holds;
    ``None`` on the side where the row or key is missing. For a row (or hash, or sorted
    set) on both sides, both hold only the columns (fields, members) that differ.
    """

    projection: str
    table: str
    key: str
    expected: Any
    actual: Any


@dataclass(frozen=True, slots=True)
class VersionContents:
    """A projection version as of one moment: its checkpoint and all it holds.

    ``entries`` maps ``(table, key)`` (as in :class:`Difference`) to a row (a dict of
    column values) or a Redis value: a string, a dict for a hash (field -> value) or a
    sorted set (member -> score, as text), a sorted list for a set, a list for a list, a list of
    entries' fields for a stream (whose ids are times, so not compared).
    """

    projection: str
    version: int
    checkpoint: Position
    entries: dict[tuple[str, str], Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_projection` found: ``differences`` is empty for a healthy model."""

    projection: str
    version: int
    """The live version compared."""
    position: Position
    """Both versions were compared as of this checkpoint."""
    compared: int
    """Rows (SQL) or keys (Redis) the live version held."""
    differences: list[Difference]
    attempts: int
    """Reads of the live version it took (read again when a rebuild switched versions
    or dropped the one being read)."""


async def verify_projection(
    event_store: EventStore,
    store: ReadStore[Any],
    projection: Projection[Any],
    *,
    max_attempts: int = 3,
    batch_size: int = 1000,
) -> VerifyReport:
    """Compare the live version of ``projection`` with a rebuild from ``event_store``.

    The live version is read as of one moment (:func:`read_version`), and a scratch
    version of ``projection`` is built up to exactly its checkpoint, compared with it,
    then dropped. Only SQL and Redis read stores are supported. Raises
    :class:`VerifyError` when the projection has no live version, or when each of
    ``max_attempts`` reads found another live version at its end than at its start.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    name = projection.name
    async with scratch_version(store, projection) as scratch:
        for attempt in range(1, max_attempts + 1):
            live = await store.live_version(name)
            if live is None:
                raise VerifyError(f"projection {name!r} has no live version")
            actual = await read_version(store, projection, live)
            if actual is None or await store.live_version(name) != live:
                continue  # it changed while being read, or a rebuild switched versions
            await build_until(event_store, store, scratch, actual.checkpoint, batch_size=batch_size)
            expected = await read_version(store, scratch, scratch.version)
            if expected is None or expected.checkpoint != actual.checkpoint:
                raise VerifyError(
                    f"{name}: the rebuild stopped at "
                    f"{expected.checkpoint if expected else None}, not at {actual.checkpoint}"
                )
            differences = compare(expected, actual)
            differences += await _parked_differences(store, name, scratch.version, actual)
            return VerifyReport(
                name, live, actual.checkpoint, len(actual.entries), differences, attempt
            )
    raise VerifyError(
        f"{name}: the live model changed during each of {max_attempts} reads; try again"
    )


@asynccontextmanager
async def scratch_version(store: ReadStore[Any], projection: P) -> AsyncIterator[P]:
    """A copy of ``projection`` at a version number nobody uses, prepared in ``store``;
    its tables or keys are dropped on leaving (also on an error or cancellation).

    The number is derived from the process id, with as many digits as the longest
    physical table name leaves room for; a number already in the store is skipped. The
    projection must have a live version already (the first version prepared would
    become live).
    """
    name = projection.name
    if await store.live_version(name) is None:
        raise VerifyError(f"projection {name!r} has no live version")
    scratch: P | None = None
    for version in _candidate_versions(projection):
        candidate = copy.copy(projection)
        candidate.version = version
        # prepare() is false when another process created that version first.
        if await store.checkpoint(name, version) is None and await store.prepare(
            candidate, candidate.setup
        ):
            scratch = candidate
            break
    if scratch is None:
        raise VerifyError(f"{name}: found no unused version number for a scratch version")
    try:
        yield scratch
    finally:
        # Shielded: a caller that cancels again while this runs must not stop it halfway
        # (Redis deletes a version's keys in several steps).
        await asyncio.shield(store.drop_version(name, scratch.version))


def _candidate_versions(projection: ProjectionSpec) -> Iterator[int]:
    longest = max(
        (len(physical_table(projection.name, t, 0).encode()) - 1 for t in projection.tables),
        default=0,
    )
    digits = min(10, MAX_TABLE_NAME_BYTES - longest)
    if digits < 2:
        return
    low = 10 ** (digits - 1)
    span = min(9 * low, _MAX_VERSION - low)
    start = os.getpid() % span
    for step in range(100):
        yield low + (start + step) % span


async def build_until(
    event_store: EventStore,
    store: ReadStore[Any],
    projection: Projection[Any],
    until: Position,
    *,
    batch_size: int = 1000,
) -> None:
    """Project the events after the version's checkpoint up to exactly ``until``.

    Like the runner: one transaction per page, guarded by the checkpoint; a page that
    fails is applied again one event at a time, and an event that still fails (or could
    not be decoded) is parked in this version. Meant for a version no runner follows.
    """
    checkpoint = await store.checkpoint(projection.name, projection.version)
    if checkpoint is None:
        raise VerifyError(f"{projection!r} is not prepared in the store")
    if checkpoint > until:
        raise VerifyError(f"{projection!r} is already past {until}")
    while checkpoint < until:
        page = await event_store.read_all(checkpoint, batch_size)
        events = [e for e in page if e.position <= until]
        if not events:
            return
        await _apply(store, projection, events, checkpoint)
        checkpoint = events[-1].position
        if len(events) < len(page):
            return


async def _apply(
    store: ReadStore[Any],
    projection: Projection[Any],
    events: Sequence[RecordedEvent],
    checkpoint: Position,
) -> None:
    handled = [
        e for e in events if projection.handles_event(e) or isinstance(e.event, UndecodableEvent)
    ]
    try:
        async with store.transaction(projection, checkpoint) as tx:
            if any(isinstance(e.event, UndecodableEvent) for e in handled):
                raise _Undecodable
            if handled:
                await projection.handle(handled, tx.uow)
            tx.advance_to(events[-1].position)
        return
    except CheckpointConflict:
        raise
    except Exception:
        pass  # the page rolled back whole; its events are applied one by one below
    for event in handled:
        if isinstance(event.event, UndecodableEvent):
            error = f"undecodable: {event.event.reason}"
        else:
            try:
                async with store.transaction(projection, checkpoint) as tx:
                    await projection.handle([event], tx.uow)
                    tx.advance_to(event.position)
                checkpoint = event.position
                continue
            except CheckpointConflict:
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
        async with store.transaction(projection, checkpoint) as tx:
            tx.park(event, error, 1)
            tx.advance_to(event.position)
        checkpoint = event.position
    if checkpoint != events[-1].position:
        async with store.transaction(projection, checkpoint) as tx:
            tx.advance_to(events[-1].position)


class _Undecodable(Exception):
    """A page holds an event that could not be decoded: it is parked on its own."""


async def read_version(
    store: ReadStore[Any], projection: ProjectionSpec, version: int
) -> VersionContents | None:
    """Everything stored version ``version`` of ``projection`` holds, with its
    checkpoint, as of one moment; ``None`` when the version does not exist.

    SQL: every row of every table the projection declares, in one snapshot
    (:meth:`SqlReadStore.snapshot`), except what is derived: virtual tables (SQLite FTS5)
    and generated columns (a PostgreSQL ``tsvector``); a declared table that does not
    exist on this database is left out. Redis: every key under the version's prefix, in
    one script (:meth:`RedisReadStore.read_version`).
    """
    if isinstance(store, SqlReadStore):
        return await _read_sql(store, projection, version)
    if isinstance(store, RedisReadStore):
        return await _read_redis(store, projection.name, version)
    raise TypeError(f"cannot read versions of a {type(store).__qualname__}")


async def _read_sql(
    store: SqlReadStore, projection: ProjectionSpec, version: int
) -> VersionContents | None:
    name = projection.name
    async with store.snapshot() as snap:
        found = await snap.fetch(
            "SELECT commit_id, seq FROM cqrskit_checkpoints WHERE projection = ? AND version = ?",
            name,
            version,
        )
        if not found:
            return None
        contents = VersionContents(
            name, version, Position(int(found[0]["commit_id"]), int(found[0]["seq"]))
        )
        for logical in projection.tables:
            physical = physical_table(name, logical, version)
            layout = await _layout(snap, physical)
            if layout is None:
                continue
            columns, key = layout
            selected = ", ".join(f'"{c}"' for c in columns)
            seen: dict[str, int] = {}
            for row in await snap.fetch(f"SELECT {selected} FROM {physical}"):
                text = ", ".join(f"{c}={row[c]}" for c in key or columns)
                if not key:
                    # Without a primary key, equal rows are told apart by their count.
                    seen[text] = seen.get(text, 0) + 1
                    text += f" #{seen[text]}" if seen[text] > 1 else ""
                contents.entries[(logical, text)] = row
    return contents


async def _layout(snap: SqlSnapshot, table: str) -> tuple[list[str], list[str]] | None:
    """The compared columns and the primary key of ``table``; ``None`` when the table is
    absent or virtual."""
    if snap.dialect == "sqlite":
        found = await snap.fetch(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", table
        )
        if not found or str(found[0]["sql"]).upper().startswith("CREATE VIRTUAL"):
            return None
        # hidden: 0 for a plain column, 2 and 3 for generated ones.
        rows = await snap.fetch(
            "SELECT name, pk, hidden FROM pragma_table_xinfo(?) ORDER BY cid", table
        )
        columns = [r["name"] for r in rows if r["hidden"] == 0]
        key = [r["name"] for r in sorted(rows, key=lambda r: int(r["pk"])) if r["pk"]]
        return columns, key
    rows = await snap.fetch(
        "SELECT a.attname AS name, a.attgenerated <> '' AS generated, "
        "COALESCE(a.attnum = ANY(i.indkey), false) AS pk FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid AND c.relkind IN ('r', 'p') "
        "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
        "WHERE a.attrelid = to_regclass(?) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        table,
    )
    if not rows:
        return None
    return [r["name"] for r in rows if not r["generated"]], [r["name"] for r in rows if r["pk"]]


def _plain(value: Any) -> Any:
    return value.decode("utf-8", errors="backslashreplace") if isinstance(value, bytes) else value


def _pairs(flat: Any) -> dict[Any, Any]:
    return {_plain(k): _plain(v) for k, v in zip(flat[::2], flat[1::2], strict=True)}


# Each type's value in plain, comparable form. A stream's entry ids are times, which two
# builds never share: only the entries' fields are compared.
_PLAIN: Final[dict[str, Callable[[Any], Any]]] = {
    "string": _plain,
    "hash": _pairs,
    "list": lambda v: [_plain(x) for x in v],
    "set": lambda v: sorted(_plain(x) for x in v),
    "zset": _pairs,
    "stream": lambda v: [_pairs(fields) for _, fields in v],
}


async def _read_redis(store: RedisReadStore, name: str, version: int) -> VersionContents | None:
    read = await store.read_version(name, version)
    if read is None:
        return None
    checkpoint, found = read
    skip = len(store.version_prefix(name, version))
    contents = VersionContents(name, version, checkpoint)
    for key, kind, value in found:
        shown = _PLAIN[kind](value) if kind in _PLAIN else f"<{kind}>"
        contents.entries[("", _plain(key)[skip:])] = shown
    return contents


_MISSING: Any = object()


def compare(expected: VersionContents, actual: VersionContents) -> list[Difference]:
    """Every entry that differs between two versions' contents, in key order."""
    differences = []
    for table, key in sorted(expected.entries.keys() | actual.entries.keys()):
        want = expected.entries.get((table, key), _MISSING)
        got = actual.entries.get((table, key), _MISSING)
        if want == got:
            continue
        if isinstance(want, dict) and isinstance(got, dict):
            changed = sorted(
                (
                    f
                    for f in want.keys() | got.keys()
                    if want.get(f, _MISSING) != got.get(f, _MISSING)
                ),
                key=str,
            )
            want = {f: want.get(f) for f in changed}
            got = {f: got.get(f) for f in changed}
        differences.append(
            Difference(
                expected.projection,
                table,
                key,
                None if want is _MISSING else want,
                None if got is _MISSING else got,
            )
        )
    return differences


async def _parked_differences(
    store: ReadStore[Any], name: str, scratch: int, live: VersionContents
) -> list[Difference]:
    """Events parked on one side only (up to the compared checkpoint)."""

    async def parked(version: int) -> dict[str, str]:
        events = await store.parked_events(name, version)
        return {p.id: p.error for p in events if p.position <= live.checkpoint}

    rebuilt, kept = await parked(scratch), await parked(live.version)
    return [
        Difference(name, PARKED, parked_id, rebuilt.get(parked_id), kept.get(parked_id))
        for parked_id in sorted(rebuilt.keys() ^ kept.keys())
    ]
