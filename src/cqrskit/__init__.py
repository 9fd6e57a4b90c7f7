"""cqrskit: CQRS with an event-sourced write side for async Python."""

from cqrskit.aggregate import Aggregate
from cqrskit.bus import CommandBus, CommandResult, Context, Middleware, Next, QueryBus
from cqrskit.consistency import ConsistencyTimeout, WaitResult, wait_for
from cqrskit.errors import (
    AggregateNotFound,
    ConcurrencyError,
    CqrsError,
    DomainError,
    DuplicateHandler,
    EventStoreClosed,
    EventStoreError,
    HandlerNotFound,
    IdempotencyKeyReused,
    UnexpectedVersion,
    UnknownEventType,
)
from cqrskit.messages import Command, DomainEvent, Metadata, Query
from cqrskit.middleware import IdempotencyMiddleware, LoggingMiddleware, RetryOnConflict
from cqrskit.projection import FailurePolicy, Projection, ProjectionRunner
from cqrskit.readstore import ReadStore, open_read_store
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
    "ConsistencyTimeout",
    "Context",
    "CqrsError",
    "DomainError",
    "DomainEvent",
    "DuplicateHandler",
    "EventRegistry",
    "EventStore",
    "EventStoreClosed",
    "EventStoreError",
    "FailurePolicy",
    "HandlerNotFound",
    "IdempotencyKeyReused",
    "IdempotencyMiddleware",
    "LoggingMiddleware",
    "Metadata",
    "Middleware",
    "Next",
    "Position",
    "Projection",
    "ProjectionRunner",
    "Query",
    "QueryBus",
    "ReadStore",
    "RecordedEvent",
    "Repository",
    "RetryOnConflict",
    "StreamAppend",
    "UnexpectedVersion",
    "UnitOfWork",
    "UnknownEventType",
    "WaitResult",
    "open_event_store",
    "open_read_store",
    "wait_for",
]
