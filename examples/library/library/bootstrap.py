"""The composition root: the one place that knows which stores, buses and projections
the library runs with, chosen by :class:`~library.settings.Settings`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from prometheus_client import CollectorRegistry

from cqrskit import (
    START,
    CommandBus,
    EventRegistry,
    EventStore,
    IdempotencyMiddleware,
    LoggingMiddleware,
    Projection,
    ProjectionRunner,
    QueryBus,
    ReadStore,
    Repository,
    RetryOnConflict,
    open_event_store,
)
from cqrskit.fastapi import CqrsServices
from cqrskit.projection import PostgresLeases, ProjectionState
from cqrskit.readstore import open_redis_read_store, open_sql_read_store
from library.application.handlers import COMMAND_HANDLERS
from library.application.queries import query_handlers
from library.application.views import CatalogReader
from library.domain import ALL_EVENTS
from library.projections import (
    CatalogRedisProjection,
    CatalogSqlProjection,
    LoansProjection,
    RedisCatalogReader,
    SqlCatalogReader,
    SqlLoanReader,
)
from library.settings import Settings

__all__ = ["command_bus", "event_registry", "open_services"]


def event_registry() -> EventRegistry:
    """Every event type of the library, by stored name."""
    return EventRegistry(ALL_EVENTS)


def command_bus(events: EventStore) -> CommandBus:
    """The command bus with every handler, behind logging, idempotency (by command id)
    and retry on a lost race (each try reloads its aggregates)."""
    bus = CommandBus(
        Repository(events),
        [LoggingMiddleware(), IdempotencyMiddleware(events), RetryOnConflict()],
    )
    for command_type, handler in COMMAND_HANDLERS.items():
        bus.register(command_type, handler)
    return bus


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    run_projections: bool = True,
    metrics: CollectorRegistry | None = None,
) -> AsyncIterator[CqrsServices]:
    """Open the stores, buses and (with ``run_projections``) the projection runner; close
    them all on leaving. On PostgreSQL, several processes may run projections: a lease
    per projection keeps exactly one of them active."""
    async with contextlib.AsyncExitStack() as stack:
        events = await open_event_store(settings.events_url, event_registry())
        stack.push_async_callback(events.close)
        sql = await open_sql_read_store(settings.read_url)
        stack.push_async_callback(sql.close)

        catalog: Projection[Any]
        catalog_store: ReadStore[Any]
        catalog_reader: CatalogReader
        if settings.redis_url is not None:
            redis = await open_redis_read_store(settings.redis_url)
            stack.push_async_callback(redis.close)
            catalog, catalog_store = CatalogRedisProjection(), redis
            catalog_reader = RedisCatalogReader(redis)
        else:
            catalog, catalog_store = CatalogSqlProjection(), sql
            catalog_reader = SqlCatalogReader(sql)
        projections: dict[str, tuple[Projection[Any], ReadStore[Any]]] = {
            "loans": (LoansProjection(), sql),
            "catalog": (catalog, catalog_store),
        }

        queries = QueryBus()
        for query_type, handler in query_handlers(SqlLoanReader(sql), catalog_reader).items():
            queries.register(query_type, handler)

        runner: ProjectionRunner | None = None
        if run_projections:
            leases = (
                # The namespace keeps apart services whose projections share names and
                # a database (each in its own schema).
                PostgresLeases(settings.events_url, namespace=settings.read_url)
                if settings.on_postgres
                else None
            )
            runner = ProjectionRunner(events, leases=leases, registry=metrics)
            for projection, store in projections.values():
                runner.add(projection, store)
            await runner.start()
            stack.push_async_callback(runner.stop)
            # Answer no query before the read models exist: creating them is the runner's
            # first step (here, or in the process that holds the lease).
            for name in projections:
                (await runner.wait_for(name, START, timeout=30)).raise_if_timed_out()
        else:
            # An API-only process creates the read models itself (idempotent, and safe
            # beside running runners) so that its first query finds them.
            for projection, store in projections.values():
                await store.prepare(projection, projection.setup)

        async def ready() -> bool:
            await events.head()
            return runner is None or all(
                status.state in (ProjectionState.LIVE, ProjectionState.STANDBY)
                for status in runner.statuses()
            )

        yield CqrsServices(
            command_bus=command_bus(events),
            query_bus=queries,
            waiters={name: store for name, (_, store) in projections.items()},
            runner=runner,
            consistency_timeout=settings.consistency_timeout,
            readiness=ready,
        )
