"""Configuration of the orders service, from ``ORDERS_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]

_EVENT_SCHEMES = ("sqlite", "postgresql", "postgres", "memory")
_READ_SCHEMES = ("sqlite", "postgresql", "postgres")


def _check_scheme(url: str, schemes: tuple[str, ...], what: str) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in schemes:
        raise ValueError(f"{what} must start with one of {', '.join(s + '://' for s in schemes)}")
    return url


class Settings(BaseSettings):
    """Everything the service reads from its environment (prefix ``ORDERS_``).

    Unset store URLs mean the embedded default: SQLite files in ``data_dir``.
    """

    model_config = SettingsConfigDict(env_prefix="ORDERS_", extra="ignore")

    data_dir: Path = Path(".orders-data")
    """Where the embedded default keeps its SQLite files and generated JWT secret."""
    event_store_url: str | None = None
    """``sqlite:///path.db`` (default: in data_dir) or ``postgresql://...``."""
    read_db_url: str | None = None
    """SQL read models: ``sqlite:///path.db`` (default: in data_dir) or ``postgresql://...``."""
    redis_url: str | None = None
    """When set, order details are kept in Redis (``redis://host:port/db``)."""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    jwt_secret: SecretStr | None = None
    """HS256 signing key; generated once into data_dir when unset."""
    max_concurrent_commands: int = Field(default=16, ge=1, le=10_000)
    """How many commands the process runs at once; the rest wait their turn, in order of
    arrival. Past what the process and its database can do at once, more only make the
    commands wait for each other inside (for a popular product), unevenly."""
    consistency_timeout: float = Field(default=2.0, ge=0, le=60)
    """How long a query with a Consistency-Token waits for the read model, in seconds."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    """``text`` for people at a terminal, ``json`` (one object per line) for log shippers."""

    @field_validator("event_store_url")
    @classmethod
    def _event_store_url(cls, url: str | None) -> str | None:
        return None if url is None else _check_scheme(url, _EVENT_SCHEMES, "the URL")

    @field_validator("read_db_url")
    @classmethod
    def _read_db_url(cls, url: str | None) -> str | None:
        return None if url is None else _check_scheme(url, _READ_SCHEMES, "the URL")

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, url: str | None) -> str | None:
        return None if url is None else _check_scheme(url, ("redis", "rediss", "unix"), "the URL")

    @property
    def events_url(self) -> str:
        """The event store URL, defaulting to a SQLite file in the data dir."""
        return self.event_store_url or f"sqlite:///{self.data_dir / 'events.db'}"

    @property
    def read_url(self) -> str:
        """The SQL read store URL, defaulting to a SQLite file in the data dir."""
        return self.read_db_url or f"sqlite:///{self.data_dir / 'read.db'}"

    @property
    def on_postgres(self) -> bool:
        """Whether events live in PostgreSQL (several processes may then share them)."""
        return urlsplit(self.events_url).scheme in ("postgresql", "postgres")
