"""cqrskit: CQRS with an event-sourced write side for async Python."""

from cqrskit.aggregate import Aggregate
from cqrskit.bus import CommandBus, CommandResult, Context, Middleware, Next, QueryBus
from cqrskit.errors import (
    AggregateNotFound,
    ConcurrencyError,
    CqrsError,
    DomainError,
    DuplicateHandler,
    EventStoreError,
    HandlerNotFound,
    UnknownEventType,
)
from cqrskit.messages import Command, DomainEvent, Metadata, Query
from cqrskit.middleware import IdempotencyMiddleware, LoggingMiddleware, RetryOnConflict
from cqrskit.repository import Repository, UnitOfWork
from cqrskit.store import (
    ANY,
    NO_STREAM,
    START,
    AppendResult,
    EventRegistry,
    EventStore,
    Position,
    RecordedEvent,
    StreamAppend,
    open_event_store,
)

__all__ = [
    "ANY",
    "NO_STREAM",
    "START",
    "Aggregate",
    "AggregateNotFound",
    "AppendResult",
    "Command",
    "CommandBus",
    "CommandResult",
    "ConcurrencyError",
    "Context",
    "CqrsError",
    "DomainError",
    "DomainEvent",
    "DuplicateHandler",
    "EventRegistry",
    "EventStore",
    "EventStoreError",
    "HandlerNotFound",
    "IdempotencyMiddleware",
    "LoggingMiddleware",
    "Metadata",
    "Middleware",
    "Next",
    "Position",
    "Query",
    "QueryBus",
    "RecordedEvent",
    "Repository",
    "RetryOnConflict",
    "StreamAppend",
    "UnitOfWork",
    "UnknownEventType",
    "open_event_store",
]
