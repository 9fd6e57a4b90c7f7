"""What the orders read models share: exact money and time columns, ids, pages, policy."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any, Final

from cqrskit.projection import FailurePolicy
from cqrskit.store.base import RecordedEvent

__all__ = [
    "PARK",
    "cents",
    "cents_at_least",
    "cents_at_most",
    "check_page",
    "day_of",
    "from_cents",
    "from_micros",
    "id_column",
    "micros",
    "occurred_at",
]

PARK: Final = FailurePolicy(then="park")
"""Every orders read model parks an event it cannot apply and goes on: one bad order must
not hold back every other order's view (the parked event stays visible for a retry)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_CENT: Final = Decimal("0.01")


def cents(amount: Decimal) -> int:
    """An amount as exact integer cents (money has at most two decimal places)."""
    return int(amount.scaleb(2).to_integral_value())


def cents_at_least(amount: Decimal) -> int:
    """The fewest whole cents that are ``>= amount`` (for a lower bound of a filter)."""
    return int(amount.scaleb(2).to_integral_value(rounding=ROUND_CEILING))


def cents_at_most(amount: Decimal) -> int:
    """The most whole cents that are ``<= amount`` (for an upper bound of a filter)."""
    return int(amount.scaleb(2).to_integral_value(rounding=ROUND_FLOOR))


def from_cents(value: Any) -> Decimal:
    """Cents back to a two-place ``Decimal`` (``1999`` -> ``19.99``)."""
    return Decimal(int(value)).scaleb(-2).quantize(_CENT)


def micros(moment: datetime) -> int:
    """A moment as microseconds since the epoch: exact, sortable and portable (BIGINT)."""
    return (moment.astimezone(UTC) - _EPOCH) // _MICROSECOND


def from_micros(value: Any) -> datetime:
    """Microseconds since the epoch back to an aware UTC datetime."""
    return _EPOCH + timedelta(microseconds=int(value))


def occurred_at(recorded: RecordedEvent) -> datetime:
    """When the event happened: the time in its metadata (UTC), not when it was stored."""
    return recorded.event.metadata.timestamp


def day_of(recorded: RecordedEvent) -> date:
    """The UTC day the event happened on."""
    return occurred_at(recorded).astimezone(UTC).date()


def id_column(dialect: str) -> str:
    """The column type of a text id that sorts byte-wise on both databases.

    Redis sorts equal scores by member bytes, SQLite compares text byte-wise; PostgreSQL
    would use the database's locale unless told otherwise, so tie-breaks on ids would
    order differently from one backend to the next.
    """
    return 'TEXT COLLATE "C"' if dialect == "postgresql" else "TEXT"


def check_page(page: int, page_size: int) -> int:
    """The offset of ``page`` (1-based) of ``page_size`` rows; refuses non-positive ones."""
    if page < 1:
        raise ValueError(f"page must be >= 1, not {page}")
    if page_size < 1:
        raise ValueError(f"page_size must be >= 1, not {page_size}")
    return (page - 1) * page_size
