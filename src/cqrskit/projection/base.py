"""The projection-author API: a projection, its failure policy, and what the runner reports."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar, Generic, Literal, TypeVar

from cqrskit.messages import DomainEvent
from cqrskit.store.base import Position, RecordedEvent

__all__ = [
    "FailurePolicy",
    "Projection",
    "ProjectionState",
    "ProjectionStatus",
    "RebuildProgress",
]

U = TypeVar("U")


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """What the runner does when a projection fails on an event.

    The event is retried ``retries`` times, waiting ``backoff`` seconds before the first
    retry and twice as long before each next one (at most ``max_backoff``). Then, with
    ``then="stop"`` the projection stops as *faulted* with the error shown in its status;
    with ``then="park"`` the event is parked (dead-lettered, with its error) and the
    projection goes on. A failing event is never skipped silently.
    """

    retries: int = 3
    backoff: float = 0.1
    max_backoff: float = 5.0
    then: Literal["stop", "park"] = "stop"

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff < 0 or self.max_backoff < 0:
            raise ValueError("retries and backoff must not be negative")
        if self.then not in ("stop", "park"):
            raise ValueError(f'then must be "stop" or "park", not {self.then!r}')

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        return float(min(self.backoff * (2**attempt), self.max_backoff))


class Projection(ABC, Generic[U]):
    """A read model built from events; ``U`` is the read store's unit of work.

    Subclasses set ``name`` (a plain identifier), ``version`` (bump it to rebuild the
    read model beside the live one), ``handles`` (the event classes it consumes), and for
    SQL read stores ``tables`` (the logical table names its SQL writes as ``{name}``).
    ``handle`` receives a batch of handled events, in global order, and writes through
    ``uow``; its writes and the checkpoint commit together. Write idempotently (UPSERT).

    ``name`` and ``version`` may also be given to the constructor, which is handy for
    building two versions of one projection class in tests.
    """

    name: str
    version: int = 1
    handles: ClassVar[tuple[type[DomainEvent], ...]] = ()
    tables: Sequence[str] = ()
    failure_policy: FailurePolicy = FailurePolicy()

    def __init__(
        self,
        *,
        name: str | None = None,
        version: int | None = None,
        failure_policy: FailurePolicy | None = None,
    ) -> None:
        if name is not None:
            self.name = name
        if version is not None:
            self.version = version
        if failure_policy is not None:
            self.failure_policy = failure_policy
        if not getattr(self, "name", ""):
            raise TypeError(f"{type(self).__qualname__} needs a name")
        if not isinstance(self.version, int) or self.version < 1:
            raise ValueError(f"{self.name}: version must be an int >= 1")
        if not self.handles:
            raise TypeError(f"{type(self).__qualname__}.handles names no event class")

    def handles_event(self, recorded: RecordedEvent) -> bool:
        """Whether ``recorded`` is one of the events this projection consumes."""
        return isinstance(recorded.event, self.handles)

    async def setup(self, uow: U) -> None:
        """Create this version's storage (e.g. ``CREATE TABLE {orders} ...``); runs once."""

    @abstractmethod
    async def handle(self, events: Sequence[RecordedEvent], uow: U) -> None:
        """Apply a batch of events (all of types in ``handles``) through ``uow``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} v{self.version}>"


class ProjectionState(StrEnum):
    """Where a projection stands in a runner."""

    STANDBY = "standby"
    """Waiting for its lease: another runner process is active for it."""
    CATCHING_UP = "catching-up"
    LIVE = "live"
    REBUILDING = "rebuilding"
    FAULTED = "faulted"
    STOPPED = "stopped"


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    """How far a rebuild has come; ``total`` is an estimate that grows with new writes."""

    projection: str
    version: int
    done: int
    total: int
    rate: float
    """Events per second since the rebuild (re)started."""
    elapsed: float
    finished: bool = False


@dataclass(frozen=True, slots=True)
class ProjectionStatus:
    """A projection's status in one runner."""

    name: str
    version: int
    state: ProjectionState
    checkpoint: Position | None
    events_behind: int
    seconds_behind: float
    parked: int
    last_error: str | None
    rebuild: RebuildProgress | None = None
