"""The projection contract suite: what every read store must do under the runner.

Bind it once per read store by providing one fixture, ``harness``, that yields a
:class:`ReadModelHarness` for an empty store::

    class TestMyReadStore(ProjectionContract):
        @pytest.fixture
        async def harness(self) -> AsyncIterator[ReadModelHarness[Any]]:
            store = ...
            yield SqlHarness(store)
            await store.close()

The harnesses here (memory, SQL, Redis) double as small examples of projection code for
each store. Needs the ``testing`` extra.

:func:`check_projection` is the matching check for *your* projection: the read model it
builds must not depend on batch sizes, replays or rebuilds.
"""

from __future__ import annotations

try:
    import pytest  # noqa: F401  (the private modules below use it)
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        'cqrskit.projection.testing needs pytest: pip install "cqrskit[testing]"'
    ) from exc

from cqrskit.projection._check_projection import check_projection
from cqrskit.projection._contract_core import _CoreTests
from cqrskit.projection._contract_failures import _FailurePolicyTests
from cqrskit.projection._contract_kit import (
    Ignored,
    MemoryHarness,
    ReadModelHarness,
    RedisHarness,
    SqlHarness,
    Ticked,
    eventually,
    harness_for,
    rewrite_stored_event,
    tick_registry,
)

# Not in __all__, but tests beside the contract use them from here.
from cqrskit.projection._contract_kit import Poisoned as Poisoned
from cqrskit.projection._contract_kit import SqlTally as SqlTally
from cqrskit.projection._contract_kit import append_ticks as append_ticks
from cqrskit.projection._contract_rebuild import _RebuildTests
from cqrskit.projection._contract_undecodable import _UndecodableEventTests

__all__ = [
    "Ignored",
    "MemoryHarness",
    "ProjectionContract",
    "ReadModelHarness",
    "RedisHarness",
    "SqlHarness",
    "Ticked",
    "check_projection",
    "eventually",
    "harness_for",
    "rewrite_stored_event",
    "tick_registry",
]


class ProjectionContract(_CoreTests, _FailurePolicyTests, _UndecodableEventTests, _RebuildTests):
    """What every read store must do under the runner (exactly-once, policies, rebuild)."""
