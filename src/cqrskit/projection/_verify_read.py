"""Reading projection versions (SQL rows or Redis keys, as of one moment) and comparing
them, for :func:`~cqrskit.projection.verify.verify_projection`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from cqrskit.readstore.base import ProjectionSpec, ReadStore, physical_table
from cqrskit.readstore.redis import RedisReadStore
from cqrskit.readstore.sql import SqlReadStore, SqlSnapshot
from cqrskit.store.base import Position

PARKED: Final = "(parked)"
"""The ``table`` of a difference in which events are parked (one side parked an event,
the other handled it)."""


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
