"""Check a read model against the events: rebuild it beside the live one and compare.

:func:`verify_projection` reads the live version of a projection (its rows or keys,
together with its checkpoint, as of one moment), builds a *scratch* version of the same
projection from the event store up to exactly that checkpoint, compares the two row by
row (SQL) or key by key (Redis), and drops the scratch version again, also on an error
or cancellation. The live version and the runner that keeps it are left alone: the
scratch version has a version number no runner uses and readers never see it.

The parts are public too: :func:`scratch_version`, :func:`build_until`,
:func:`read_version` and :func:`compare`.

The reading and comparing is in ``_verify_read``, building the scratch version in
``_verify_build``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cqrskit.projection._verify_build import VerifyError, build_until, scratch_version
from cqrskit.projection._verify_read import (
    PARKED,
    Difference,
    VersionContents,
    _parked_differences,
    compare,
    read_version,
)
from cqrskit.projection.base import Projection
from cqrskit.readstore.base import ReadStore
from cqrskit.store.base import EventStore, Position

__all__ = [
    "PARKED",
    "Difference",
    "VerifyError",
    "VerifyReport",
    "VersionContents",
    "build_until",
    "compare",
    "read_version",
    "scratch_version",
    "verify_projection",
]


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify_projection` found: ``differences`` is empty for a healthy model."""

    projection: str
    version: int
    """The live version compared."""
    position: Position
    """Both versions were compared as of this checkpoint."""
    compared: int
    """Rows (SQL) or keys (Redis) the live version held."""
    differences: list[Difference]
    attempts: int
    """Reads of the live version it took (read again when a rebuild switched versions
    or dropped the one being read)."""


async def verify_projection(
    event_store: EventStore,
    store: ReadStore[Any],
    projection: Projection[Any],
    *,
    max_attempts: int = 3,
    batch_size: int = 1000,
) -> VerifyReport:
    """Compare the live version of ``projection`` with a rebuild from ``event_store``.

    The live version is read as of one moment (:func:`read_version`), and a scratch
    version of ``projection`` is built up to exactly its checkpoint, compared with it,
    then dropped. Only SQL and Redis read stores are supported. Raises
    :class:`VerifyError` when the projection has no live version, or when each of
    ``max_attempts`` reads found another live version at its end than at its start.
    """
    if max_attempts < 1:
        raise ValueError("max_attempts must be >= 1")
    name = projection.name
    async with scratch_version(store, projection) as scratch:
        for attempt in range(1, max_attempts + 1):
            live = await store.live_version(name)
            if live is None:
                raise VerifyError(f"projection {name!r} has no live version")
            actual = await read_version(store, projection, live)
            if actual is None or await store.live_version(name) != live:
                continue  # it changed while being read, or a rebuild switched versions
            await build_until(event_store, store, scratch, actual.checkpoint, batch_size=batch_size)
            expected = await read_version(store, scratch, scratch.version)
            if expected is None or expected.checkpoint != actual.checkpoint:
                raise VerifyError(
                    f"{name}: the rebuild stopped at "
                    f"{expected.checkpoint if expected else None}, not at {actual.checkpoint}"
                )
            differences = compare(expected, actual)
            differences += await _parked_differences(store, name, scratch.version, actual)
            return VerifyReport(
                name, live, actual.checkpoint, len(actual.entries), differences, attempt
            )
    raise VerifyError(
        f"{name}: the live model changed during each of {max_attempts} reads; try again"
    )
