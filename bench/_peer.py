"""Configuring eventsourcing, the peer of compare.py and the projection benchmark."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit


def postgres_env(url: str, schema: str) -> dict[str, str]:
    """eventsourcing's settings for its PostgreSQL persistence at ``url``, in ``schema``
    (which it expects to exist)."""
    parts = urlsplit(url)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": parts.path.lstrip("/") or "postgres",
        "POSTGRES_HOST": parts.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parts.port or 5432),
        "POSTGRES_USER": unquote(parts.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parts.password or ""),
        "POSTGRES_SCHEMA": schema,
    }
