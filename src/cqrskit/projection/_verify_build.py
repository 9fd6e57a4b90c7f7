"""Building a scratch version of a projection beside the live one, up to exactly a
checkpoint, for :func:`~cqrskit.projection.verify.verify_projection` to compare."""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, Final, TypeVar

from cqrskit.errors import CqrsError
from cqrskit.projection._failures import _describe, _handles, _raise_if_undecodable
from cqrskit.projection.base import Projection
from cqrskit.readstore.base import (
    MAX_TABLE_NAME_BYTES,
    CheckpointConflict,
    ProjectionSpec,
    ReadStore,
    physical_table,
)
from cqrskit.store.base import EventStore, Position, RecordedEvent
from cqrskit.store.serialization import UndecodableEvent

P = TypeVar("P", bound=Projection[Any])

_MAX_VERSION: Final = 2**31 - 1
"""SQL read stores keep version numbers in 32-bit INTEGER columns."""


class VerifyError(CqrsError):
    """The comparison could not be made (no live version, or it kept changing)."""


@asynccontextmanager
async def scratch_version(store: ReadStore[Any], projection: P) -> AsyncIterator[P]:
    """A copy of ``projection`` at a version number nobody uses, prepared in ``store``;
    its tables or keys are dropped on leaving (also on an error or cancellation).

    The number is derived from the process id, with as many digits as the longest
    physical table name leaves room for; a number already in the store is skipped. The
    projection must have a live version already (the first version prepared would
    become live).
    """
    name = projection.name
    if await store.live_version(name) is None:
        raise VerifyError(f"projection {name!r} has no live version")
    scratch: P | None = None
    for version in _candidate_versions(projection):
        candidate = copy.copy(projection)
        candidate.version = version
        # prepare() is false when another process created that version first.
        if await store.checkpoint(name, version) is None and await store.prepare(
            candidate, candidate.setup
        ):
            scratch = candidate
            break
    if scratch is None:
        raise VerifyError(f"{name}: found no unused version number for a scratch version")
    try:
        yield scratch
    finally:
        # Shielded: a caller that cancels again while this runs must not stop it halfway
        # (Redis deletes a version's keys in several steps).
        await asyncio.shield(store.drop_version(name, scratch.version))


def _candidate_versions(projection: ProjectionSpec) -> Iterator[int]:
    longest = max(
        (len(physical_table(projection.name, t, 0).encode()) - 1 for t in projection.tables),
        default=0,
    )
    digits = min(10, MAX_TABLE_NAME_BYTES - longest)
    if digits < 2:
        return
    low = 10 ** (digits - 1)
    span = min(9 * low, _MAX_VERSION - low)
    start = os.getpid() % span
    for step in range(100):
        yield low + (start + step) % span


async def build_until(
    event_store: EventStore,
    store: ReadStore[Any],
    projection: Projection[Any],
    until: Position,
    *,
    batch_size: int = 1000,
) -> None:
    """Project the events after the version's checkpoint up to exactly ``until``.

    Like the runner: pages of the types the projection handles, one transaction per
    page, guarded by the checkpoint; a page that fails is applied again one event at a
    time, and an event that still fails (or could not be decoded) is parked in this
    version. Meant for a version no runner follows.
    """
    checkpoint = await store.checkpoint(projection.name, projection.version)
    if checkpoint is None:
        raise VerifyError(f"{projection!r} is not prepared in the store")
    if checkpoint > until:
        raise VerifyError(f"{projection!r} is already past {until}")
    while checkpoint < until:
        page = await event_store.read_all(checkpoint, batch_size, types=projection.handles)
        if not page.scanned:
            return
        # The page may reach past ``until``: the events up to it are all it needs.
        end = min(page.end, until)
        events = [e for e in page if e.position <= end]
        await _apply(store, projection, events, checkpoint, end)
        checkpoint = end
        if page.scanned < batch_size:
            return


async def _apply(
    store: ReadStore[Any],
    projection: Projection[Any],
    events: Sequence[RecordedEvent],
    checkpoint: Position,
    end: Position,
) -> None:
    # As the runner decides: an undecodable event concerns only the projections that
    # consume its registered type (every projection, for an unknown type).
    handled = [e for e in events if _handles(projection, e)]
    try:
        async with store.transaction(projection, checkpoint) as tx:
            if any(isinstance(e.event, UndecodableEvent) for e in handled):
                raise _Undecodable
            if handled:
                await projection.handle(handled, tx.uow)
            tx.advance_to(end)
        return
    except CheckpointConflict:
        raise
    except Exception:
        pass  # the page rolled back whole; its events are applied one by one below
    for event in handled:
        try:
            _raise_if_undecodable(event)
            async with store.transaction(projection, checkpoint) as tx:
                await projection.handle([event], tx.uow)
                tx.advance_to(event.position)
            checkpoint = event.position
            continue
        except CheckpointConflict:
            raise
        except Exception as exc:
            error = _describe(exc, event)
        async with store.transaction(projection, checkpoint) as tx:
            tx.park(event, error, 1)
            tx.advance_to(event.position)
        checkpoint = event.position
    if checkpoint != end:
        async with store.transaction(projection, checkpoint) as tx:
            tx.advance_to(end)


class _Undecodable(Exception):
    """A page holds an event that could not be decoded: it is parked on its own."""
