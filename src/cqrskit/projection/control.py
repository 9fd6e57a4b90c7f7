"""Control records: what runners and operators tell each other through the read stores.

A runner publishes the status of every projection it is active for, so that any process
(an API process, an operator's CLI) can show it; an operator asks for a rebuild of a
projection as it is, which the active runner carries out beside the live version; and the
runner notes which code version built which stored version, so that a rebuilt version
(numbered past the code's) is recognised after a restart.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson

from cqrskit.projection.base import ProjectionState, ProjectionStatus, RebuildProgress
from cqrskit.readstore.base import ReadStore

__all__ = [
    "Lineage",
    "PublishedStatus",
    "at_version",
    "published_statuses",
    "request_rebuild",
]

REPORT = "report"
REBUILD = "rebuild"
LINEAGE = "lineage"

P = TypeVar("P")


@dataclass(frozen=True, slots=True)
class PublishedStatus:
    """A projection's status as its active runner last published it."""

    name: str
    version: int
    state: ProjectionState
    checkpoint: str | None
    events_behind: int
    seconds_behind: float
    parked: int
    last_error: str | None
    holder: str
    """The runner process that published it (``host:pid`` by default)."""
    rebuild: RebuildProgress | None
    updated_at: datetime

    @property
    def age(self) -> float:
        """Seconds since it was published: a runner publishes every second or so, so an
        old status means the runner that held the projection is gone or stuck."""
        return max(0.0, (datetime.now(UTC) - self.updated_at).total_seconds())


def encode_status(status: ProjectionStatus, holder: str) -> str:
    """The JSON a runner publishes for ``status``."""
    rebuild = status.rebuild
    return orjson.dumps(
        {
            "version": status.version,
            "state": status.state.value,
            "checkpoint": None if status.checkpoint is None else str(status.checkpoint),
            "events_behind": status.events_behind,
            "seconds_behind": status.seconds_behind,
            "parked": status.parked,
            "last_error": status.last_error,
            "holder": holder,
            "rebuild": None
            if rebuild is None
            else {
                "version": rebuild.version,
                "done": rebuild.done,
                "total": rebuild.total,
                "rate": rebuild.rate,
                "elapsed": rebuild.elapsed,
                "finished": rebuild.finished,
            },
        }
    ).decode()


def _decode_status(name: str, text: str, at: datetime) -> PublishedStatus:
    raw: dict[str, Any] = orjson.loads(text)
    rebuild = raw.get("rebuild")
    return PublishedStatus(
        name=name,
        version=int(raw["version"]),
        state=ProjectionState(raw["state"]),
        checkpoint=raw.get("checkpoint"),
        events_behind=int(raw.get("events_behind", 0)),
        seconds_behind=float(raw.get("seconds_behind", 0.0)),
        parked=int(raw.get("parked", 0)),
        last_error=raw.get("last_error"),
        holder=str(raw.get("holder", "?")),
        rebuild=None if rebuild is None else RebuildProgress(projection=name, **rebuild),
        updated_at=at,
    )


async def published_statuses(store: ReadStore[Any]) -> dict[str, PublishedStatus]:
    """The statuses runners published into ``store``, by projection name."""
    records = await store.controls(REPORT)
    return {name: _decode_status(name, text, at) for name, (text, at) in records.items()}


async def request_rebuild(store: ReadStore[Any], projection: str) -> None:
    """Ask the runner active for ``projection`` to rebuild it as it is, without downtime.

    The runner builds a new version beside the live one from the first event, keeps the
    live one current meanwhile, switches readers over once caught up and drops the old
    version; its published status shows the progress. It notices the request within a
    second or so of being live (it checks between batches and on idle wake-ups).
    """
    await store.put_control(projection, REBUILD, datetime.now(UTC).isoformat())


@dataclass(slots=True)
class Lineage:
    """Which projection code version built each stored version, and the version being
    built on request. A stored version absent from ``built_by`` was built by the code
    version of the same number (the rule before any requested rebuild)."""

    built_by: dict[int, int] = field(default_factory=dict)
    pending: int | None = None

    def code_of(self, version: int) -> int:
        """The code version that built stored ``version``."""
        return self.built_by.get(version, version)

    @classmethod
    async def load(cls, store: ReadStore[Any], projection: str) -> Lineage:
        """The lineage kept for ``projection`` (empty when none was kept)."""
        record = (await store.controls(LINEAGE)).get(projection)
        if record is None:
            return cls()
        raw = orjson.loads(record[0])
        return cls({int(k): int(v) for k, v in raw["built_by"].items()}, raw.get("pending"))

    async def save(self, store: ReadStore[Any], projection: str) -> None:
        """Keep this lineage for ``projection``."""
        raw = {"built_by": {str(k): v for k, v in self.built_by.items()}, "pending": self.pending}
        await store.put_control(projection, LINEAGE, orjson.dumps(raw).decode())


def at_version(projection: P, version: int) -> P:
    """A copy of ``projection`` that reads and writes stored ``version``."""
    if getattr(projection, "version", None) == version:
        return projection
    clone = copy.copy(projection)
    clone.version = version  # type: ignore[attr-defined]
    return clone
