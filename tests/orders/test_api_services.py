"""The Orders routes refuse an app whose services were not opened by create_app with a
TypeError that says so, also under ``python -O`` (no assert)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.requests import Request

from cqrskit import CommandBus, EventRegistry, QueryBus, Repository
from cqrskit.fastapi import CqrsServices
from cqrskit.store import MemoryEventStore
from orders.api import _services_of


def test_services_of_another_kind_of_app_are_refused() -> None:
    app = FastAPI()
    app.state.cqrs_services = CqrsServices(
        command_bus=CommandBus(Repository(MemoryEventStore(EventRegistry()))),
        query_bus=QueryBus(),
    )
    request = Request({"type": "http", "app": app, "headers": []})

    with pytest.raises(TypeError, match=r"not made by orders\.api\.create_app"):
        _services_of(request)
