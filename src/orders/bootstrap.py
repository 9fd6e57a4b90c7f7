"""The composition root: the only place that knows which stores, buses and projections
the service runs with, built from :class:`~orders.settings.Settings`."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from cqrskit import (
    START,
    CommandBus,
    ConcurrencyLimit,
    EventRegistry,
    EventStore,
    LoggingMiddleware,
    Projection,
    ProjectionRunner,
    QueryBus,
    ReadStore,
    open_event_store,
)
from cqrskit.fastapi import CqrsServices
from cqrskit.projection import PostgresLeases, ProjectionState
from cqrskit.readstore import open_redis_read_store, open_sql_read_store
from orders.application.command_handlers import (
    command_middleware,
    command_repository,
    register_command_handlers,
)
from orders.application.queries import Readers, query_handlers
from orders.application.views import OrderDetailsReader
from orders.auth import TokenService, load_or_create_secret
from orders.domain.events import ALL_EVENTS
from orders.projections import (
    CatalogProjection,
    CustomerProjection,
    OrderDetailsRedisProjection,
    OrderDetailsSqlProjection,
    OrderSearchProjection,
    RedisOrderDetailsReader,
    SalesReportProjection,
    SqlCatalogReader,
    SqlCustomerReader,
    SqlOrderDetailsReader,
    SqlOrderSearchReader,
    SqlSalesReportReader,
)
from orders.settings import Settings

__all__ = ["PROJECTIONS", "Services", "event_registry", "open_services", "token_service"]

log = logging.getLogger("orders")

PROJECTIONS = ("order_details", "order_search", "sales_report", "catalog", "customers")
"""The service's read models, by projection name."""


def event_registry() -> EventRegistry:
    """Every event type of the service."""
    return EventRegistry(ALL_EVENTS)


def token_service(settings: Settings) -> TokenService:
    """The token service with the configured secret, or the one kept in the data dir."""
    if settings.jwt_secret is not None:
        return TokenService(settings.jwt_secret.get_secret_value())
    return TokenService(load_or_create_secret(settings.data_dir))


@dataclass(frozen=True, kw_only=True)
class Services(CqrsServices):
    """A running service's parts: the buses, stores and runner of :class:`CqrsServices`
    (which the web integration uses), and what the orders entrypoints need besides."""

    settings: Settings
    event_store: EventStore
    read_stores: Mapping[str, ReadStore[Any]]
    """Read store by projection name."""
    projections: Mapping[str, Projection[Any]]
    tokens: TokenService
    metrics: CollectorRegistry

    async def ready(self) -> bool:
        """Whether the stores answer and every projection is live (here, or in the
        process that holds it)."""
        await self.event_store.head()
        for name, store in self.read_stores.items():
            if await store.live_checkpoint(name) is None:
                return False
        if self.runner is not None:
            return all(
                s.state in (ProjectionState.LIVE, ProjectionState.STANDBY)
                for s in self.runner.statuses()
            )
        return True


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    *,
    run_projections: bool = True,
    metrics: CollectorRegistry | None = None,
) -> AsyncIterator[Services]:
    """Open everything the service needs and close it all on leaving.

    With ``run_projections`` the projection runner runs in this process (on PostgreSQL,
    several processes may run one: a lease per projection keeps one active).
    """
    if settings.event_store_url is None or settings.read_db_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        events = await open_event_store(settings.events_url, event_registry())
        stack.push_async_callback(events.close)
        sql = await open_sql_read_store(settings.read_url)
        stack.push_async_callback(sql.close)

        details: Projection[Any]
        details_store: ReadStore[Any]
        details_reader: OrderDetailsReader
        if settings.redis_url is not None:
            redis = await open_redis_read_store(settings.redis_url)
            stack.push_async_callback(redis.close)
            details, details_store = OrderDetailsRedisProjection(), redis
            details_reader = RedisOrderDetailsReader(redis)
        else:
            details, details_store = OrderDetailsSqlProjection(), sql
            details_reader = SqlOrderDetailsReader(sql)
        projections: dict[str, Projection[Any]] = {
            "order_details": details,
            "order_search": OrderSearchProjection(),
            "sales_report": SalesReportProjection(),
            "catalog": CatalogProjection(),
            "customers": CustomerProjection(),
        }
        read_stores: dict[str, ReadStore[Any]] = dict.fromkeys(projections, sql)
        read_stores["order_details"] = details_store

        metrics = metrics if metrics is not None else CollectorRegistry()
        command_bus = CommandBus(
            command_repository(events),
            [
                ConcurrencyLimit(settings.max_concurrent_commands),
                LoggingMiddleware(),
                *command_middleware(events, metrics),
            ],
        )
        register_command_handlers(command_bus)
        query_bus = QueryBus([LoggingMiddleware(logging.getLogger("orders.queries"))])
        readers = Readers(
            order_details=details_reader,
            order_search=SqlOrderSearchReader(sql),
            sales_report=SqlSalesReportReader(sql),
            catalog=SqlCatalogReader(sql),
            customers=SqlCustomerReader(sql),
        )
        for query_type, handler in query_handlers(readers).items():
            query_bus.register(query_type, handler)

        runner: ProjectionRunner | None = None
        if run_projections:
            runner = ProjectionRunner(
                events,
                leases=PostgresLeases(settings.events_url, namespace=settings.read_url)
                if settings.on_postgres
                else None,
                registry=metrics,
            )
            for name, projection in projections.items():
                runner.add(projection, read_stores[name])
            await runner.start()
            stack.push_async_callback(runner.stop)
            # Answer no query before every read model's tables exist: the runner creates
            # them (or a runner elsewhere did) as its first step.
            for name in projections:
                (await runner.wait_for(name, START, timeout=30)).raise_if_timed_out()
        else:
            # An API-only process still needs the read models' tables to exist before
            # it can answer; preparing is idempotent and safe beside running runners.
            for name, projection in projections.items():
                await read_stores[name].prepare(projection, projection.setup)

        yield Services(
            settings=settings,
            command_bus=command_bus,
            query_bus=query_bus,
            waiters=read_stores,
            event_store=events,
            read_stores=read_stores,
            projections=projections,
            tokens=token_service(settings),
            metrics=metrics,
            runner=runner,
            consistency_timeout=settings.consistency_timeout,
        )
