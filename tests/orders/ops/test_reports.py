"""Merging a runner's published status into what the stores show (no server needed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orders.operations import ProjectionHealth, with_report

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
FROM_STORES = ProjectionHealth(
    name="customers",
    version=1,
    checkpoint="42",
    events_behind=3,
    behind_capped=False,
    seconds_behind=1.5,
    parked=1,
)


def report(age: float, **fields: object) -> dict[str, object]:
    return {
        "state": "live",
        "version": 1,
        "checkpoint": "40",
        "events_behind": 9,
        "seconds_behind": 9.0,
        "parked": 5,
        "last_error": None,
        "holder": "box:123",
        "updated_at": (NOW - timedelta(seconds=age)).isoformat(),
        "rebuild": None,
        **fields,
    }


def test_without_a_report_the_state_is_unknown() -> None:
    health = with_report(FROM_STORES, None, NOW)
    assert (health.state, health.holder, health.report_age) == ("unknown", None, None)
    assert not health.stale
    assert not health.faulted


def test_a_report_gives_what_only_the_runner_knows_and_the_stores_keep_the_counts() -> None:
    health = with_report(FROM_STORES, report(2, state="faulted", last_error="boom"), NOW)
    assert (health.state, health.last_error, health.holder) == ("faulted", "boom", "box:123")
    assert health.report_age == 2
    assert health.faulted
    assert not health.stale
    # Fresher than the report, and right after a retry from another process.
    assert (health.checkpoint, health.events_behind, health.parked) == ("42", 3, 1)


def test_a_report_older_than_ten_seconds_is_stale() -> None:
    health = with_report(FROM_STORES, report(11), NOW)
    assert health.stale
    assert health.as_json()["stale"] is True
    assert health.as_json()["report_age"] == 11
