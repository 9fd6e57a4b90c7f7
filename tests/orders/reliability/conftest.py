"""The service's environment, bound twice like the other process-level suites: the
embedded default (SQLite files in a temporary data dir), and PostgreSQL (fresh schemas)
with order details in Redis (a fresh key prefix)."""

from __future__ import annotations

import pytest
from e2e.conftest import pg_read_schema
from e2e.test_serve import base_env

from .harness import SECRET

__all__ = ["base_env", "pg_read_schema"]  # fixtures, used by name

CONSISTENCY_TIMEOUT = "10"
"""Seconds a read with a token waits: generous, so a stale read means a stall, not a
busy machine."""


@pytest.fixture(params=["sqlite", "postgres+redis"])
def env(request: pytest.FixtureRequest, base_env: dict[str, str]) -> dict[str, str]:
    env = {
        **base_env,
        "ORDERS_JWT_SECRET": SECRET,
        "ORDERS_CONSISTENCY_TIMEOUT": CONSISTENCY_TIMEOUT,
        "ORDERS_LOG_LEVEL": "warning",
    }
    if request.param == "postgres+redis":
        postgres_url = request.getfixturevalue("postgres_url")
        schema, read_schema = (
            request.getfixturevalue("pg_schema"),
            request.getfixturevalue("pg_read_schema"),
        )
        redis_url = request.getfixturevalue("redis_url")
        env |= {
            "ORDERS_EVENT_STORE_URL": f"{postgres_url}?schema={schema}",
            "ORDERS_READ_DB_URL": f"{postgres_url}?schema={read_schema}",
            "ORDERS_REDIS_URL": f"{redis_url}?prefix={request.getfixturevalue('redis_prefix')}",
        }
    return env
