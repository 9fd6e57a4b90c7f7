"""Command and query buses: one handler per message type, behind a middleware pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cqrskit.errors import DuplicateHandler, HandlerNotFound
from cqrskit.messages import Command, Message, Query
from cqrskit.repository import Repository, UnitOfWork
from cqrskit.store.base import Position

__all__ = [
    "CommandBus",
    "CommandHandler",
    "CommandResult",
    "Context",
    "Middleware",
    "Next",
    "QueryBus",
    "QueryHandler",
]

M = TypeVar("M", bound=Message)
R = TypeVar("R")
C = TypeVar("C", bound=Command)
Q = TypeVar("Q", bound=Query[Any])


@dataclass(frozen=True, slots=True)
class CommandResult:
    """All a command returns: the id of the aggregate it created or changed, and where its
    events landed in the global order (the consistency token). ``replayed`` is true when the
    same command id was handled before and this is that first result."""

    aggregate_id: str
    position: Position
    replayed: bool = False

    @property
    def token(self) -> str:
        """The consistency token: pass it to a query to read this command's effects."""
        return str(self.position)


@dataclass(slots=True)
class Context(Generic[M]):
    """One message on its way through a bus's middleware.

    ``idempotency_key`` is set by the idempotency middleware: when present, the command's
    events are recorded under it, together with ``fingerprint`` (a digest of the command,
    to refuse the key's reuse for another command). ``attempt`` counts tries made by the
    retry middleware.
    """

    message: M
    idempotency_key: str | None = None
    attempt: int = 1
    fingerprint: str | None = None


Next = Callable[[Context[M]], Awaitable[R]]
Middleware = Callable[[Context[M], Next[M, R]], Awaitable[R]]
"""Wraps the rest of the pipeline: ``async def mw(context, call_next)`` that awaits
``call_next(context)`` (or answers without it) and returns the result."""

CommandHandler = Callable[[C, UnitOfWork], Awaitable[str]]
"""Changes aggregates through the unit of work and returns the id of the main one."""

QueryHandler = Callable[[Q], Awaitable[R]]
"""Answers a query from read models."""


def _chain(middleware: Sequence[Middleware[M, R]], last: Next[M, R]) -> Next[M, R]:
    call = last
    for mw in reversed(middleware):

        def bound(
            context: Context[M], _mw: Middleware[M, R] = mw, _next: Next[M, R] = call
        ) -> Awaitable[R]:
            return _mw(context, _next)

        call = bound
    return call


class _Registry(Generic[M]):
    def __init__(self) -> None:
        self._handlers: dict[type[M], Any] = {}

    def add(self, message_type: type[M], handler: Any) -> None:
        if message_type in self._handlers:
            raise DuplicateHandler(message_type)
        self._handlers[message_type] = handler

    def get(self, message_type: type[M]) -> Any:
        try:
            return self._handlers[message_type]
        except KeyError:
            raise HandlerNotFound(message_type) from None


class CommandBus:
    """Sends each command to its one handler inside a fresh unit of work.

    The handler loads or creates aggregates through the unit of work and returns the id of
    the main one; the bus then commits, so every command is one atomic append.
    ``middleware`` wraps that, outermost first.
    """

    def __init__(
        self,
        repository: Repository,
        middleware: Sequence[Middleware[Command, CommandResult]] = (),
    ) -> None:
        self._repository = repository
        self._handlers: _Registry[Command] = _Registry()
        self._pipeline = _chain(middleware, self._dispatch)

    def register(self, command_type: type[C], handler: CommandHandler[C]) -> None:
        """Make ``handler`` the handler of ``command_type``; a second one is an error."""
        self._handlers.add(command_type, handler)

    async def send(self, command: Command) -> CommandResult:
        """Handle ``command`` and return its result."""
        self._handlers.get(type(command))  # fail fast, before any middleware runs
        return await self._pipeline(Context(command))

    async def _dispatch(self, context: Context[Command]) -> CommandResult:
        command = context.message
        handler: CommandHandler[Command] = self._handlers.get(type(command))
        async with UnitOfWork(self._repository, command) as uow:
            aggregate_id = await handler(command, uow)
            result = await uow.commit(
                aggregate_id, context.idempotency_key, fingerprint=context.fingerprint
            )
        return CommandResult(result.result_id or aggregate_id, result.position, result.replayed)


class QueryBus:
    """Sends each query to its one handler; handlers read only read models."""

    def __init__(self, middleware: Sequence[Middleware[Query[Any], Any]] = ()) -> None:
        self._handlers: _Registry[Query[Any]] = _Registry()
        self._pipeline: Next[Query[Any], Any] = _chain(middleware, self._dispatch)

    def register(self, query_type: type[Q], handler: QueryHandler[Q, Any]) -> None:
        """Make ``handler`` the handler of ``query_type``; a second one is an error."""
        self._handlers.add(query_type, handler)

    async def ask(self, query: Query[R]) -> R:
        """Answer ``query``; typed as what the query declares (``Query[R]`` answers ``R``)."""
        self._handlers.get(type(query))
        answer: R = await self._pipeline(Context(query))
        return answer

    async def _dispatch(self, context: Context[Query[Any]]) -> Any:
        handler: QueryHandler[Query[Any], Any] = self._handlers.get(type(context.message))
        return await handler(context.message)
