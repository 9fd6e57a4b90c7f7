"""What the admin endpoints answer and accept, for people and for the OpenAPI document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from cqrskit.readstore.base import ParkedEvent
from orders.domain.values import Reason
from orders.operations import ProjectionHealth

__all__ = [
    "AdminEvent",
    "AdminParkedEvent",
    "AdminProjection",
    "DiscardBody",
    "RebuildInfo",
]


class RebuildInfo(BaseModel):
    """How far a rebuild has come (``total`` grows with writes made meanwhile)."""

    version: int
    done: int
    total: int
    rate: float
    elapsed: float
    finished: bool


class AdminProjection(BaseModel):
    """One projection: counts read from its stores now, the rest from its runner's last
    published status (``report_age`` seconds old; ``stale`` once too old to trust)."""

    name: str
    state: str
    """``live``, ``catching-up``, ``rebuilding``, ``faulted``, ``standby``, ``stopped``, or
    ``unknown`` when no runner ever published a status."""
    version: int | None
    checkpoint: str | None
    events_behind: int | None
    behind_capped: bool
    """Whether ``events_behind`` is a floor: counting stopped there."""
    seconds_behind: float | None
    parked: int
    last_error: str | None
    holder: str | None
    """The runner process that holds the projection (``host:pid``)."""
    report_age: float | None
    stale: bool
    faulted: bool
    rebuild: RebuildInfo | None

    @classmethod
    def of(cls, health: ProjectionHealth) -> AdminProjection:
        """The answer for one projection's health."""
        return cls.model_validate(health.as_json())


class AdminParkedEvent(BaseModel):
    """An event a projection parked: where it is, what failed and how often."""

    id: str
    """The id to retry or discard it by (its position)."""
    projection: str
    version: int
    """The projection's stored version that parked it."""
    position: str
    stream_id: str
    stream_version: int
    event_type: str
    error: str
    attempts: int
    parked_at: datetime
    undecodable: bool
    """Whether it was parked because it could not be decoded at all."""

    @classmethod
    def of(cls, parked: ParkedEvent) -> AdminParkedEvent:
        """The answer for one parked event."""
        return cls(
            id=parked.id,
            projection=parked.projection,
            version=parked.version,
            position=str(parked.position),
            stream_id=parked.stream_id,
            stream_version=parked.stream_version,
            event_type=parked.event_type,
            error=parked.error,
            attempts=parked.attempts,
            parked_at=parked.parked_at,
            undecodable=parked.undecodable,
        )


class AdminEvent(BaseModel):
    """A stored event: where it is, when, its lineage and its payload."""

    stream_id: str
    version: int
    position: str
    type: str
    recorded_at: datetime
    message_id: str
    correlation_id: str | None
    causation_id: str | None
    user_id: str | None
    payload: Any
    """The event's fields; for an undecodable event, the stored JSON text."""
    undecodable: str | None = None
    """Why the event cannot be decoded, when it cannot."""


class DiscardBody(BaseModel):
    """Why a parked event is dropped for good (logged with who dropped it)."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason
