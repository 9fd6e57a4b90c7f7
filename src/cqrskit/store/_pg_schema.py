"""The PostgreSQL event store's schema: URL options, migrations and the append function."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from cqrskit.errors import SchemaError, StoreOptionError
from cqrskit.store._connect import masked_url, positive_number
from cqrskit.store._pg_listener import CONNECTION_ERRORS

DEFAULT_SCHEMA: Final = "cqrskit"

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection: TypeAlias = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]

_SCHEMA_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True, slots=True)
class PgTarget:
    """Where the store lives: the DSN handed to asyncpg and the schema within it."""

    dsn: str
    schema: str

    @property
    def quoted(self) -> str:
        """The schema as an SQL identifier (the name is validated, quoting keeps case)."""
        return f'"{self.schema}"'

    @property
    def channel(self) -> str:
        """The LISTEN/NOTIFY channel of this store's appends.

        PostgreSQL refuses channel names over 63 bytes, so a long schema name is hashed
        (one channel per schema either way: other schemas' appends wake no reader here).
        """
        channel = f"cqrskit_events.{self.schema}"
        if len(channel.encode()) <= 63:
            return channel
        return f"cqrskit_events.{hashlib.blake2b(self.schema.encode(), digest_size=16).hexdigest()}"


STORE_OPTIONS: Final = (
    "schema",
    "notify",
    "max_connections",
    "connect_timeout",
    "command_timeout",
)
"""URL query options the store reads itself; every other one goes to asyncpg."""

CONNECT_ERRORS: Final[tuple[type[BaseException], ...]] = (
    *CONNECTION_ERRORS,
    asyncpg.TooManyConnectionsError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
)
"""What asyncpg raises when it cannot get a connection to a server: refused, unreachable,
too busy, login refused, or no such database."""


SESSION_SETTINGS: Final = {"enable_seqscan": "off"}
"""Settings of every pooled connection of the event store (connection options may
override them).

Sequential scans off, so that a version check is an index lookup whatever the table's
statistics say. Statistics taken while the table was empty (and never refreshed: a server
without autovacuum) make a sequential scan the cheapest way to find a stream's version;
a prepared statement settles on that plan within its first executions and keeps it as the
table grows, so every append reads the whole table (measured: 1,100+ appends/s down to
60-150/s at 60k events). Costing sequential scans out keeps the (stream_id, version)
index and plans nothing per call: ``plan_cache_mode = force_custom_plan`` would also
plan from the table's real size, but planning every statement costs a one-event append
about 14% (measured). Every query the store runs has an index made for it, and a query
without one still gets its sequential scan (this setting only adds to its cost). The
version checks are written as the last row of the stream in that index
(``ORDER BY version DESC LIMIT 1``): with ``max(version)``, the planner may read every
entry of the stream instead.
"""


def parse_url(url: str) -> tuple[PgTarget, dict[str, str]]:
    """Split the store's own options (:data:`STORE_OPTIONS`) off a ``postgresql://`` URL.

    Returns the target (the DSN for asyncpg, the schema) and the other store options.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL (postgresql://user@host/db): {masked_url(url)!r}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    options: dict[str, str] = {}
    for key, value in query:
        if key in STORE_OPTIONS:
            if key in options:
                raise ValueError(f"the {key} option appears more than once: {masked_url(url)!r}")
            options[key] = value
    schema = options.pop("schema", DEFAULT_SCHEMA)
    if not _SCHEMA_NAME.fullmatch(schema):
        raise ValueError(
            f"schema must be a plain identifier (letters, digits, _; at most 63): {schema!r}"
        )
    rest = urlencode([(key, value) for key, value in query if key not in STORE_OPTIONS])
    return PgTarget(urlunsplit(parts._replace(query=rest)), schema), options


def pool_settings(
    url: str,
    url_options: dict[str, str],
    notify: str | None,
    min_connections: int,
    max_connections: int | None,
) -> tuple[str, int]:
    """The notify mode and the pool's size the event store opens with: its keyword
    arguments, else its URL options (``notify``, ``max_connections``), else the defaults."""
    chosen = notify if notify is not None else url_options.get("notify", "after_commit")
    if chosen not in ("in_transaction", "after_commit"):
        raise StoreOptionError(
            "notify", "'in_transaction' or 'after_commit'", chosen, where="event store"
        )
    if max_connections is None:
        max_connections = int(
            positive_number(
                "max_connections",
                url_options.get("max_connections", "10"),
                where="event store URL option",
                integer=True,
            )
        )
    if not 0 <= min_connections <= max_connections or max_connections < 1:
        raise ValueError("need 0 <= min_connections <= max_connections, 1 <= max_connections")
    return chosen, max_connections


def _migrations(s: str) -> tuple[str, ...]:
    """Migration scripts for schema ``s`` (quoted); never edit one that has shipped."""
    created = _append_events_function(s, "CREATE FUNCTION", _MAX_VERSION.format(s=s))
    replaced = _append_events_function(s, "CREATE OR REPLACE FUNCTION", _LAST_VERSION.format(s=s))
    return (
        f"""
        CREATE TABLE {s}.events (
            global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(),
            stream_id text NOT NULL,
            version bigint NOT NULL,
            event_type text NOT NULL,
            schema_version integer NOT NULL,
            data jsonb NOT NULL,
            metadata jsonb NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now(),
            CONSTRAINT events_stream_version_key UNIQUE (stream_id, version)
        );
        -- Serves read_all and head: readers walk (transaction_id, global_position).
        CREATE INDEX events_global_order ON {s}.events (transaction_id, global_position);

        CREATE TABLE {s}.idempotency (
            key text CONSTRAINT idempotency_pkey PRIMARY KEY,
            result text NOT NULL,
            recorded_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE {s}.snapshots (
            stream_id text PRIMARY KEY,
            version bigint NOT NULL,
            aggregate_type text NOT NULL,
            schema_version integer NOT NULL,
            state jsonb NOT NULL
        );

        {created}        """,
        # With sequential scans off (SESSION_SETTINGS), migration 1's max(version) may
        # still be planned as a walk over every index entry of the stream; the last
        # entry is all a version check needs.
        f"""
        {replaced}        """,
    )


_MAX_VERSION: Final = """\
                SELECT coalesce(max(e.version), 0) INTO current
                  FROM {s}.events e WHERE e.stream_id = p_streams[i];
"""
"""The version check of ``append_events`` in migration 1, as it shipped."""

_LAST_VERSION: Final = """\
                SELECT e.version INTO current FROM {s}.events e
                 WHERE e.stream_id = p_streams[i] ORDER BY e.version DESC LIMIT 1;
                current := coalesce(current, 0);
"""
"""The version check of ``append_events`` from migration 2 on: the last row of the
stream's (stream_id, version) index, whatever the statistics say (see ``SESSION_SETTINGS``)."""


def _append_events_function(s: str, create: str, version_check: str) -> str:
    """The ``append_events`` function, made with ``create`` (``CREATE FUNCTION`` or
    ``CREATE OR REPLACE FUNCTION``), reading each stream's version with ``version_check``.

    Migrations 1 and 2 differ only there; the text of migration 1 is what it was.
    """
    return f"""-- One round trip per append. Every read (idempotency key, stream versions) comes
        -- before the first write: the transaction takes its id at its first insert, after
        -- it saw the previous version of each stream committed, so a later version of a
        -- stream always carries a larger transaction id (DESIGN.md, mechanism 3). Races
        -- end in a unique violation, which the client turns into ConcurrencyError or a
        -- replay. Rows go in the order given: the client sorts them by stream.
        {create} {s}.append_events(
            p_streams text[],
            p_expected bigint[],
            p_counts integer[],
            p_stream_index integer[],
            p_offsets integer[],
            p_types text[],
            p_schema_versions integer[],
            p_data jsonb[],
            p_metadata jsonb[],
            p_key text,
            p_result_id text,
            p_channel text,
            OUT outcome text,
            OUT conflict_stream text,
            OUT actual bigint,
            OUT versions bigint[],
            OUT commit_id xid8,
            OUT seq bigint,
            OUT stored text
        ) LANGUAGE plpgsql AS $fn$
        DECLARE
            n integer := cardinality(p_streams);
            actuals bigint[] := '{{}}';
            current bigint;
        BEGIN
            IF p_key IS NOT NULL THEN
                SELECT i.result INTO stored FROM {s}.idempotency i WHERE i.key = p_key;
                IF FOUND THEN
                    outcome := 'replayed';
                    RETURN;
                END IF;
            END IF;
            -- Plain statements and loops: plpgsql runs them far cheaper than array
            -- aggregates, which matters for the common one-stream, one-event append.
            FOR i IN 1 .. n LOOP
{version_check}                IF p_expected[i] <> -1 AND p_expected[i] <> current THEN
                    outcome := 'conflict';
                    conflict_stream := p_streams[i];
                    actual := current;
                    RETURN;
                END IF;
                actuals[i] := current;
            END LOOP;
            -- No write above this line.
            IF cardinality(p_types) = 1 THEN
                INSERT INTO {s}.events
                    (stream_id, version, event_type, schema_version, data, metadata)
                VALUES (p_streams[p_stream_index[1]], actuals[p_stream_index[1]] + p_offsets[1],
                        p_types[1], p_schema_versions[1], p_data[1], p_metadata[1])
                RETURNING global_position INTO seq;
            ELSIF cardinality(p_types) > 1 THEN
                WITH written AS (
                    INSERT INTO {s}.events
                        (stream_id, version, event_type, schema_version, data, metadata)
                    SELECT p_streams[u.k], actuals[u.k] + u.off, u.t, u.sv, u.d, u.m
                      FROM unnest(p_stream_index, p_offsets, p_types, p_schema_versions,
                                  p_data, p_metadata)
                           WITH ORDINALITY AS u(k, off, t, sv, d, m, ord)
                     ORDER BY u.ord
                    RETURNING global_position
                )
                SELECT max(w.global_position) INTO seq FROM written w;
            END IF;
            IF seq IS NOT NULL THEN
                commit_id := pg_current_xact_id();
                IF p_channel IS NOT NULL THEN
                    PERFORM pg_notify(p_channel, '');
                END IF;
            ELSE
                SELECT e.transaction_id, e.global_position INTO commit_id, seq
                  FROM {s}.events e
                 WHERE e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
                 ORDER BY e.transaction_id DESC, e.global_position DESC
                 LIMIT 1;
                commit_id := coalesce(commit_id, '0'::xid8);
                seq := coalesce(seq, 0);
            END IF;
            versions := actuals;
            FOR i IN 1 .. n LOOP
                versions[i] := actuals[i] + p_counts[i];
            END LOOP;
            IF p_key IS NOT NULL THEN
                -- json, not jsonb: it keeps the streams in the caller's order.
                INSERT INTO {s}.idempotency (key, result)
                VALUES (p_key, json_build_object(
                    'versions', (SELECT json_object_agg(p_streams[g.i], versions[g.i]
                                                        ORDER BY g.i)
                                   FROM generate_series(1, n) AS g(i)),
                    'position', json_build_array(commit_id::text::bigint, seq),
                    'result_id', p_result_id)::text);
            END IF;
            outcome := 'appended';
        END
        $fn$;
"""


def _lock_key(schema: str) -> int:
    """The advisory lock that serializes migrations of one schema across processes."""
    digest = hashlib.blake2b(f"cqrskit.event_store:{schema}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


async def migrate_if_behind(
    conn: Connection, target: PgTarget, connect_options: dict[str, Any]
) -> None:
    """Create or upgrade the schema when ``conn`` finds it behind (that look is bounded
    like any statement), on a connection of its own without a statement timeout.

    A migration may run long on a large table, or wait for another process's migration
    (the advisory lock); it is one transaction, so a process stopped meanwhile leaves
    nothing half done. ``connect_options`` are the pool's (for ``asyncpg.connect``).
    """
    if await _applied(conn, target) == len(_migrations(target.quoted)):
        return
    unhurried = await asyncpg.connect(target.dsn, **{**connect_options, "command_timeout": None})
    try:
        await migrate(unhurried, target)
    finally:
        await unhurried.close()


async def migrate(conn: Connection, target: PgTarget) -> None:
    """Create or upgrade the schema; safe when several processes start at once.

    Runs in one transaction under a transaction-level advisory lock, so a second process
    waits for the first, then finds nothing left to do. Statements run under ``conn``'s
    own timeout (see :func:`migrate_if_behind`).
    """
    s = target.quoted
    migrations = _migrations(s)
    latest = len(migrations)
    if await _applied(conn, target) == latest:
        return
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _lock_key(target.schema))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {s}.schema_migrations ("
            "version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        current = await _applied(conn, target)
        for number, script in enumerate(migrations[current:], start=current + 1):
            await conn.execute(script)
            await conn.execute(f"INSERT INTO {s}.schema_migrations (version) VALUES ($1)", number)


async def _applied(conn: Connection, target: PgTarget) -> int:
    """The number of migrations applied to the schema (0 when it does not exist)."""
    table = f"{target.quoted}.schema_migrations"
    if await conn.fetchval("SELECT to_regclass($1)", table) is None:
        return 0
    current = int(await conn.fetchval(f"SELECT coalesce(max(version), 0) FROM {table}"))
    latest = len(_migrations(target.quoted))
    if current > latest:
        raise SchemaError(
            f"event store schema {target.schema!r} is at version {current}, newer than this "
            f"cqrskit understands ({latest})"
        )
    return current


async def keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Pool reset hook that does nothing, for the event store's and read store's pools.

    asyncpg's default reset is a round trip on every release, which the caller waits for
    (a quarter of a one-event append; a second round trip on every read-store query).
    Neither store leaves session state behind: no SET, LISTEN, session advisory lock or
    cursor outlives a call (listeners and leases have connections of their own); asyncpg
    still rolls back a transaction left open. Projection SQL on the read store must use
    ``SET LOCAL`` for the same reason (docs/projections.md says so).
    """
