"""Bad timeouts and other option values, in store URLs or as keyword arguments: a
:class:`StoreOptionError` (a ``ValueError``) naming the option and what it takes, raised
before any connection is attempted (these URLs point at nothing)."""

from __future__ import annotations

from typing import Any

import pytest

from cqrskit import StoreOptionError
from cqrskit.readstore import open_read_store
from cqrskit.store import open_event_store
from cqrskit.testing import contract_registry

NOWHERE = "postgresql://nobody@127.0.0.1:1/x"
SECONDS = "a positive number of seconds"
BAD_SECONDS = ["soon", "0", "-1", "nan", "inf", "1e999", "3s"]


@pytest.mark.parametrize("option", ["connect_timeout", "command_timeout"])
@pytest.mark.parametrize("value", BAD_SECONDS)
async def test_bad_timeouts_in_a_postgres_url(option: str, value: str) -> None:
    for opened in (
        open_event_store(f"{NOWHERE}?{option}={value}", contract_registry()),
        open_read_store(f"{NOWHERE}?{option}={value}"),
    ):
        with pytest.raises(StoreOptionError) as raised:
            await opened
        assert raised.value.option == option
        assert f"URL option {option} must be {SECONDS}, not {value!r}" in str(raised.value)


@pytest.mark.parametrize("value", BAD_SECONDS)
async def test_a_bad_redis_timeout(value: str) -> None:
    with pytest.raises(StoreOptionError, match=f"URL option timeout must be {SECONDS}"):
        await open_read_store(f"redis://127.0.0.1:1/0?timeout={value}")


@pytest.mark.parametrize("value", [0, -2.5, float("nan"), float("inf"), True, "3"])
@pytest.mark.parametrize(
    "url", [NOWHERE, "redis://127.0.0.1:1/0", "sqlite:///never.db", "memory://"]
)
async def test_bad_timeout_arguments(url: str, value: Any) -> None:
    for option in ("connect_timeout", "command_timeout"):
        opened = [open_read_store(url, **{option: value})]
        if not url.startswith("redis"):
            opened.append(open_event_store(url, contract_registry(), **{option: value}))
        for opening in opened:
            with pytest.raises(StoreOptionError) as raised:
                await opening
            assert raised.value.option == option
            assert f"{option} must be {SECONDS}" in str(raised.value)


async def test_other_bad_event_store_options_name_themselves() -> None:
    with pytest.raises(StoreOptionError, match="max_connections must be a positive integer"):
        await open_event_store(f"{NOWHERE}?max_connections=lots", contract_registry())
    with pytest.raises(ValueError, match="notify must be 'in_transaction' or 'after_commit'"):
        await open_event_store(f"{NOWHERE}?notify=sometimes", contract_registry())
