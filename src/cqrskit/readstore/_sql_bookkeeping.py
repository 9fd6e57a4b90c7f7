"""The SQL read store's bookkeeping: its own tables (live versions, checkpoints, table
names, parked events, control records) and the statements a projection's transaction
adds to its writes (park, retry failure, unpark, checkpoint, switch, notify)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from cqrskit.readstore._sql_driver import SqlDriver, Statement
from cqrskit.readstore.base import ReadTransaction, no_parked_event, stored_form
from cqrskit.store.base import Position

META_TABLES: Final = (
    """CREATE TABLE IF NOT EXISTS cqrskit_projections (
        projection TEXT PRIMARY KEY,
        live_version INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS cqrskit_checkpoints (
        projection TEXT NOT NULL,
        version INTEGER NOT NULL,
        commit_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (projection, version)
    )""",
    """CREATE TABLE IF NOT EXISTS cqrskit_projection_tables (
        projection TEXT NOT NULL,
        version INTEGER NOT NULL,
        logical TEXT NOT NULL,
        physical TEXT NOT NULL,
        PRIMARY KEY (projection, version, logical)
    )""",
    """CREATE TABLE IF NOT EXISTS cqrskit_parked_events (
        projection TEXT NOT NULL,
        version INTEGER NOT NULL,
        commit_id BIGINT NOT NULL,
        seq BIGINT NOT NULL,
        stream_id TEXT NOT NULL,
        stream_version BIGINT NOT NULL,
        event_type TEXT NOT NULL,
        error TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        parked_at TEXT NOT NULL,
        schema_version INTEGER,
        data TEXT,
        metadata TEXT,
        PRIMARY KEY (projection, version, commit_id, seq)
    )""",
    """CREATE TABLE IF NOT EXISTS cqrskit_control (
        projection TEXT NOT NULL,
        kind TEXT NOT NULL,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (projection, kind)
    )""",
)

PARKED_RAW_COLUMNS: Final = (("schema_version", "INTEGER"), ("data", "TEXT"), ("metadata", "TEXT"))
"""Columns added to ``cqrskit_parked_events`` after its first release (the raw stored form
of an undecodable event); :meth:`SqlReadStore.create_meta` adds them to older tables."""

UNPARK_SQL: Final = (
    "DELETE FROM cqrskit_parked_events WHERE projection = ? AND version = ? "
    "AND commit_id = ? AND seq = ?"
)

LIVE_TABLES_SQL: Final = (
    "SELECT t.logical, t.physical FROM cqrskit_projections p "
    "JOIN cqrskit_projection_tables t ON t.projection = p.projection "
    "AND t.version = p.live_version WHERE p.projection = ?"
)


def _now() -> str:
    return datetime.now(UTC).isoformat()


class _SqlBookkeeping:
    """The bookkeeping part of :class:`~cqrskit.readstore.sql.SqlReadStore`."""

    _driver: SqlDriver

    async def create_meta(self) -> None:
        """Create the bookkeeping tables (idempotent)."""
        async with self._driver.begin() as tx:
            lock = self._driver.lock_statement("cqrskit-readstore-meta")
            statements = [lock] if lock else []
            statements += [Statement(sql, [()]) for sql in META_TABLES]
            columns = await tx.fetch(statements, self._columns_sql("cqrskit_parked_events"), ())
            present = {r["name"] for r in columns}
            await tx.commit(
                [
                    Statement(f"ALTER TABLE cqrskit_parked_events ADD COLUMN {name} {kind}", [()])
                    for name, kind in PARKED_RAW_COLUMNS
                    if name not in present
                ]
            )

    def _columns_sql(self, table: str) -> str:
        if self._driver.dialect == "sqlite":
            return f"SELECT name FROM pragma_table_info('{table}')"
        return (
            "SELECT column_name AS name FROM information_schema.columns "
            f"WHERE table_name = '{table}' AND table_schema = current_schema()"
        )

    def _bookkeeping(
        self, name: str, version: int, expected: Position | None, tx: ReadTransaction[Any]
    ) -> list[Statement]:
        statements: list[Statement] = []
        if tx.parked:
            now = _now()
            statements.append(
                Statement(
                    "INSERT INTO cqrskit_parked_events (projection, version, commit_id, seq, "
                    "stream_id, stream_version, event_type, error, attempts, parked_at, "
                    "schema_version, data, metadata) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (projection, version, commit_id, seq) DO UPDATE SET "
                    "error = excluded.error, attempts = excluded.attempts, "
                    "parked_at = excluded.parked_at, schema_version = excluded.schema_version, "
                    "data = excluded.data, metadata = excluded.metadata",
                    [
                        (
                            name,
                            version,
                            e.position.commit,
                            e.position.seq,
                            e.stream_id,
                            e.version,
                            form.event_type,
                            error,
                            attempts,
                            now,
                            form.schema_version,
                            form.data,
                            form.metadata,
                        )
                        for e, error, attempts in tx.parked
                        for form in (stored_form(e),)
                    ],
                )
            )
        if tx.retry_failures:
            # No guard: a parked event retried or discarded meanwhile stays gone.
            statements.append(
                Statement(
                    "UPDATE cqrskit_parked_events SET error = ?, attempts = attempts + 1 "
                    "WHERE projection = ? AND version = ? AND commit_id = ? AND seq = ?",
                    [
                        (error, name, version, p.position.commit, p.position.seq)
                        for p, error in tx.retry_failures
                    ],
                )
            )
        for parked_id in tx.unparked:
            try:
                position = Position.parse(parked_id)
            except ValueError:
                raise no_parked_event(name, version, parked_id) from None
            # A guard: exactly one row, or the event is no longer parked and all rolls back.
            statements.append(
                Statement(UNPARK_SQL, [(name, version, position.commit, position.seq)], 1)
            )
        channel = self._driver.notify_channel
        notified = False
        if expected is not None or tx.new_checkpoint is not None:
            target = tx.new_checkpoint or expected
            assert target is not None
            guard = "" if expected is None else " AND commit_id = ? AND seq = ?"
            params: tuple[Any, ...] = (target.commit, target.seq, _now(), name, version)
            if expected is not None:
                params += (expected.commit, expected.seq)
            update = (
                "UPDATE cqrskit_checkpoints SET commit_id = ?, seq = ?, updated_at = ? "
                f"WHERE projection = ? AND version = ?{guard}"
            )
            if channel is not None and not tx.switch_live:
                # Checkpoint and NOTIFY in one round trip; the payload tells waiters in
                # other processes the new checkpoint and whether readers use this version,
                # so they need not read it (see checkpoint_news). FOR SHARE keeps that
                # "live" true until this commits: a switch of the live version waits for
                # it, and a switch already committed is seen (not this statement's older
                # snapshot), so a waiter is never told of a version readers left.
                statements.append(
                    Statement(
                        f"WITH moved AS ({update} RETURNING version, commit_id, seq) "
                        "SELECT pg_notify(?, concat_ws(' ', ?::text, m.version, "
                        "m.commit_id || ':' || m.seq, "
                        "CASE WHEN p.live_version = m.version THEN 'live' ELSE 'other' END)) "
                        "FROM moved m LEFT JOIN (SELECT live_version FROM cqrskit_projections "
                        "WHERE projection = ? FOR SHARE) p ON true",
                        [(*params, channel, name, name)],
                        expect_rows=1,
                    )
                )
                notified = True
            else:
                statements.append(Statement(update, [params], expect_rows=1))
        if tx.switch_live:
            statements.append(
                Statement(
                    "UPDATE cqrskit_projections SET live_version = ? WHERE projection = ?",
                    [(version, name)],
                )
            )
        if channel is not None and not notified:
            statements.append(Statement("SELECT pg_notify(?, ?)", [(channel, name)]))
        return statements
