"""Middleware shipped with cqrskit: structured logging, retry on conflict, idempotency,
and a limit on the commands that run at once."""

from __future__ import annotations

import asyncio
import logging
import random
import time
import weakref
from contextvars import ContextVar
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter

from cqrskit._fingerprint import check_fingerprint, fingerprint
from cqrskit.bus import CommandResult, Context, Next
from cqrskit.errors import (
    AggregateNotFound,
    ConcurrencyError,
    CqrsError,
    DomainError,
    UnexpectedVersion,
)
from cqrskit.messages import Command, Message
from cqrskit.store._arguments import check_limit
from cqrskit.store.base import EventStore

__all__ = ["ConcurrencyLimit", "IdempotencyMiddleware", "LoggingMiddleware", "RetryOnConflict"]

M = TypeVar("M", bound=Message)
R = TypeVar("R")


class LoggingMiddleware:
    """Logs each message's outcome and duration with its correlation id.

    Records carry ``message_type``, ``message_id``, ``correlation_id``, ``duration_ms``
    and ``outcome`` as structured fields (``extra``), for JSON log formatters.
    """

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or logging.getLogger("cqrskit.bus")

    async def __call__(self, context: Context[M], call_next: Next[M, R]) -> R:
        message = context.message
        fields: dict[str, object] = {
            "message_type": type(message).__name__,
            "message_id": str(message.metadata.message_id),
            "correlation_id": str(message.metadata.correlation_id),
        }
        started = time.perf_counter()
        try:
            result = await call_next(context)
        except Exception as exc:
            fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
            fields["outcome"] = type(exc).__name__
            if isinstance(exc, CqrsError):
                # A refusal the caller is told about (a business rule, an unknown id, a
                # lost race): an outcome, not a fault, so no traceback for each one.
                self._log.info("%s refused: %s", fields["message_type"], exc, extra=fields)
            else:
                self._log.warning(
                    "%s failed: %s", fields["message_type"], exc, extra=fields, exc_info=exc
                )
            raise
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
        fields["outcome"] = "ok"
        self._log.info("%s handled", fields["message_type"], extra=fields)
        return result


class RetryOnConflict:
    """Runs the rest of the pipeline again when it raises :class:`ConcurrencyError`.

    Each try runs the handler with a fresh unit of work, so it reloads the aggregates it
    touches. Waits grow exponentially from ``base_delay`` up to ``max_delay`` with full
    jitter, so that competing writers spread out; after ``attempts`` tries the error is
    raised to the caller.

    With ``registry``, every lost race is counted there as
    ``cqrskit_command_conflicts_total``, by command type and outcome (``retried``, or
    ``gave_up`` when the error went to the caller): how contended the streams are.
    """

    def __init__(
        self,
        attempts: int = 5,
        base_delay: float = 0.002,
        max_delay: float = 0.1,
        *,
        registry: CollectorRegistry | None = None,
    ) -> None:
        if attempts < 1:
            raise ValueError("attempts must be >= 1")
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._conflicts = (
            None
            if registry is None
            else Counter(
                "cqrskit_command_conflicts",
                "Commands whose append lost a race (ConcurrencyError), by command type and "
                "outcome: retried, or gave_up.",
                ["command", "outcome"],
                registry=registry,
            )
        )

    async def __call__(
        self, context: Context[Command], call_next: Next[Command, CommandResult]
    ) -> CommandResult:
        while True:
            try:
                return await call_next(context)
            except ConcurrencyError:
                gave_up = context.attempt >= self.attempts
                if self._conflicts is not None:
                    outcome = "gave_up" if gave_up else "retried"
                    self._conflicts.labels(type(context.message).__name__, outcome).inc()
                if gave_up:
                    raise
                ceiling = min(self.max_delay, self.base_delay * 2 ** (context.attempt - 1))
                await asyncio.sleep(random.uniform(0, ceiling))
                context.attempt += 1


_REFUSALS = (DomainError, AggregateNotFound, UnexpectedVersion, ConcurrencyError)
"""What a repeat of a handled command may fail with: its first run changed what it finds."""


class IdempotencyMiddleware:
    """Makes commands idempotent by their id (``metadata.message_id``).

    A command whose id was handled before returns the first result and writes nothing. A
    new command's events are recorded under its id in the same transaction as the events,
    so the record survives restarts, and two concurrent repeats cannot both write. The
    handler of a repeat runs again (its append is where the repeat is recognised, or, when
    it fails, the record is looked up): nothing is read before a new command runs.

    The record also keeps a fingerprint of the command (its type and payload): a
    *different* command sent under an id already used raises
    :class:`~cqrskit.errors.IdempotencyKeyReused` instead of replaying, also when the two
    race each other.
    """

    def __init__(self, store: EventStore) -> None:
        self._store = store

    async def __call__(
        self, context: Context[Command], call_next: Next[Command, CommandResult]
    ) -> CommandResult:
        key = str(context.message.metadata.message_id)
        digest = fingerprint(context.message)
        context.idempotency_key = key
        context.fingerprint = digest
        # Most command ids are new, so the record is looked up only when the command
        # fails: a repeat that runs to its append is answered there, by the store, with
        # the first result (the key is checked in the append's transaction); a repeat
        # that fails instead (the order it placed exists now, the version it expected
        # has moved on) is answered here.
        try:
            return await call_next(context)
        except _REFUSALS:
            # Only a refusal can be a repeat's doing; a store that is down is not worth
            # asking again, and asking would make the caller wait for it twice.
            earlier = await self._store.find_idempotent(key)
            if earlier is None:
                raise
        result_id = check_fingerprint(earlier.result_id, digest, key)
        return CommandResult(result_id, earlier.position, replayed=True)


class ConcurrencyLimit:
    """Lets at most ``limit`` messages through at once; the others wait their turn, first
    come, first served, before anything of theirs has started.

    Once the process (or its database) is busy, running more commands at once adds no
    throughput, only waits inside them: for a popular aggregate's queue
    (``Repository(one_writer_at_a_time=...)``), for the store. Those waits are unfair: a
    command that holds one product while it waits for another holds up every command
    that wants the first, so a few wait for a long time. Waiting here instead, outermost,
    keeps the waits short and even.

    A message sent while handling one that holds a place (the same task, or a task it
    started) goes through without waiting: nested sends never wait for their own parent.
    """

    def __init__(self, limit: int) -> None:
        self.limit = check_limit(limit)
        # An asyncio.Semaphore belongs to the loop it was first used on: one per loop.
        self._places: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
        self._holding: ContextVar[bool] = ContextVar(f"cqrskit-limit-{id(self)}", default=False)

    async def __call__(self, context: Context[M], call_next: Next[M, R]) -> R:
        if self._holding.get():
            return await call_next(context)
        loop = asyncio.get_running_loop()
        places = self._places.get(loop)
        if places is None:
            places = self._places[loop] = asyncio.Semaphore(self.limit)
        async with places:
            holding = self._holding.set(True)
            try:
                return await call_next(context)
            finally:
                self._holding.reset(holding)
