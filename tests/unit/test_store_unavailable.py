"""Opening a store that cannot be reached: StoreUnavailable, naming the store and its URL
with the password masked, the driver's error chained. Needs no server: port 1 refuses."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from cqrskit import StoreUnavailable
from cqrskit.readstore import open_read_store
from cqrskit.store import EventRegistry, open_event_store
from cqrskit.store._connect import masked_url

SECRET = "s3cr3t-pw"


@pytest.fixture
def a_file(tmp_path: Path) -> Path:
    # A directory cannot be made inside a file, even by root (who ignores permissions).
    path = tmp_path / "plain-file"
    path.write_text("not a directory")
    return path


def _check(
    caught: pytest.ExceptionInfo[StoreUnavailable], wanted: str, caplog: pytest.LogCaptureFixture
) -> None:
    message = str(caught.value)
    assert message.startswith(wanted), message
    assert SECRET not in message
    assert caught.value.__cause__ is not None
    assert SECRET not in caplog.text
    # Mapped to 503 by the web layer (an OSError), and retryable by runners.
    assert isinstance(caught.value, ConnectionError)


async def test_postgres_event_store(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreUnavailable) as caught:
        await open_event_store(f"postgresql://nobody:{SECRET}@127.0.0.1:1/x", EventRegistry())
    _check(
        caught,
        "could not connect to the PostgreSQL event store at "
        "postgresql://nobody:***@127.0.0.1:1/x: connection refused",
        caplog,
    )
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


async def test_postgres_read_store(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreUnavailable) as caught:
        await open_read_store(f"postgresql://nobody:{SECRET}@127.0.0.1:1/x?schema=rs")
    _check(
        caught,
        "could not connect to the PostgreSQL read store at postgresql://nobody:***@127.0.0.1:1/x",
        caplog,
    )


async def test_redis_read_store_pings_at_open(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with pytest.raises(StoreUnavailable) as caught:
        await open_read_store(f"redis://:{SECRET}@127.0.0.1:1/0")
    _check(
        caught, "could not connect to the Redis read store at redis://:***@127.0.0.1:1/0", caplog
    )


async def test_sqlite_event_store_whose_directory_cannot_be_made(
    a_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = a_file / "sub" / "events.db"
    with pytest.raises(StoreUnavailable) as caught:
        await open_event_store(f"sqlite:///{path}", EventRegistry())
    _check(caught, f"could not open the SQLite event store at {path}: ", caplog)
    assert isinstance(caught.value.__cause__, OSError)


async def test_sqlite_event_store_on_a_directory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with pytest.raises(StoreUnavailable, match="unable to open database file") as caught:
        await open_event_store(f"sqlite:///{tmp_path}", EventRegistry())
    _check(caught, f"could not open the SQLite event store at {tmp_path}: ", caplog)


async def test_sqlite_read_store(a_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = a_file / "read.db"
    with pytest.raises(StoreUnavailable) as caught:
        await open_read_store(f"sqlite:///{path}")
    _check(caught, f"could not open the SQLite read store at {path}: ", caplog)


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db"),
        ("postgresql://u@h/db?password=pw&schema=s", "postgresql://u@h/db?password=***&schema=s"),
        ("postgresql://u@h/db?sslpassword=pw", "postgresql://u@h/db?sslpassword=***"),
        ("redis://:pw@h:6379/0", "redis://:***@h:6379/0"),
        ("postgresql://u:p@w@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:p/w@h/db", "postgresql://u:***@h/db"),
        ("postgresql://h:notaport/db?password=pw", "postgresql://h:notaport/db?password=***"),
        ("postgresql://u@h/db", "postgresql://u@h/db"),
        ("sqlite:///var/events.db", "sqlite:///var/events.db"),
    ],
)
def test_masked_url(url: str, masked: str) -> None:
    assert masked_url(url) == masked


async def test_urls_in_argument_errors_are_masked_too() -> None:
    with pytest.raises(ValueError, match="unsupported event store URL") as caught:
        await open_event_store(f"mysql://u:{SECRET}@h/db", EventRegistry())
    assert SECRET not in str(caught.value)
    with pytest.raises(ValueError, match="max_connections") as caught:
        await open_event_store(
            f"postgresql://u:{SECRET}@127.0.0.1:1/db?max_connections=x", EventRegistry()
        )
    assert SECRET not in str(caught.value)
    with pytest.raises(ValueError, match="unsupported read store URL") as caught:
        await open_read_store(f"mysql://u:{SECRET}@h/db")
    assert SECRET not in str(caught.value)
