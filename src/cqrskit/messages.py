"""Messages: commands, queries and domain events, each carrying :class:`Metadata`.

All messages are immutable pydantic v2 models. A message's metadata says who sent it, when,
and which earlier message caused it, so a whole conversation can be traced by its
correlation id.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Self
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, GetPydanticSchema
from pydantic_core import core_schema
from typing_extensions import TypeVar

from cqrskit._ids import new_id

__all__ = ["Command", "DomainEvent", "Message", "Metadata", "Query"]

R = TypeVar("R", default=Any)
"""What a query answers; a bare ``Query`` subclass answers ``Any``."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


_AWARE_TO_UTC = core_schema.no_info_after_validator_function(
    _to_utc, core_schema.datetime_schema(tz_constraint="aware")
)

_UtcDatetime = Annotated[
    datetime,
    GetPydanticSchema(
        lambda _type, _handler: core_schema.json_or_python_schema(
            # Stored JSON is already UTC (this type wrote it): accepted without a Python
            # call, which matters because every event read decodes one. Other offsets in
            # JSON, and every Python value, are converted to UTC.
            json_schema=core_schema.union_schema(
                [core_schema.datetime_schema(tz_constraint=0), _AWARE_TO_UTC],
                mode="left_to_right",
                custom_error_type="datetime_with_offset",
                custom_error_message="Input should be an ISO 8601 datetime with a timezone offset",
            ),
            python_schema=_AWARE_TO_UTC,
        )
    ),
]
"""A timezone-aware datetime, kept in UTC; naive datetimes are refused."""


def _message_itself(_value: None, info: core_schema.ValidationInfo) -> UUID | None:
    return info.data.get("message_id")


_Correlation = Annotated[
    UUID | None,
    GetPydanticSchema(
        lambda _type, handler: core_schema.union_schema(
            # A given id is taken as is (no Python call when decoding); none means the
            # message starts its conversation: it correlates with itself.
            [
                handler.generate_schema(UUID),
                core_schema.with_info_after_validator_function(
                    _message_itself, core_schema.none_schema()
                ),
            ],
            mode="left_to_right",
            custom_error_type="uuid_type",
        )
    ),
]


class Metadata(BaseModel):
    """Identity and lineage of a message.

    A message that starts a conversation is its own correlation; one caused by another
    message shares that message's correlation id and names it as its causation.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: UUID = Field(default_factory=new_id)
    timestamp: _UtcDatetime = Field(default_factory=_utc_now)
    correlation_id: _Correlation = Field(default=None, validate_default=True)
    causation_id: UUID | None = None
    user_id: str | None = None

    def caused(self, child: Metadata | None = None) -> Metadata:
        """Metadata for a message caused by the one carrying this metadata.

        ``child`` keeps its own id and time (a fresh id and time when omitted); correlation,
        causation and user come from this message.
        """
        base = child if child is not None else Metadata()
        return Metadata(
            message_id=base.message_id,
            timestamp=base.timestamp,
            correlation_id=self.correlation_id,
            causation_id=self.message_id,
            user_id=self.user_id if base.user_id is None else base.user_id,
        )


class Message(BaseModel):
    """Base of every message: immutable, strict about unknown fields, with metadata."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    metadata: Metadata = Field(default_factory=Metadata)

    def with_metadata(self, metadata: Metadata) -> Self:
        """A copy of this message carrying ``metadata``."""
        return self.model_copy(update={"metadata": metadata})


class Command(Message):
    """A request to change state, named in the imperative (``PlaceOrder``).

    ``metadata.message_id`` is the command id: sending the same id twice through a bus with
    the idempotency middleware returns the first result and writes nothing.
    """


class Query(Message, Generic[R]):
    """A request for data that changes nothing (``GetOrderDetails``).

    Parametrize it with what it answers, ``class GetOrder(Query[OrderView])``, and
    ``await query_bus.ask(GetOrder(...))`` is typed as ``OrderView``. The parameter adds no
    field; a plain ``class Ping(Query)`` answers ``Any``.
    """


class DomainEvent(Message):
    """Something that happened, named in the past tense (``OrderPlaced``).

    Subclasses may set ``event_type`` (the stored name, defaults to the class name) and
    ``schema_version`` (defaults to 1; bump it together with an upcaster when the payload
    shape changes).
    """

    event_type: ClassVar[str]
    schema_version: ClassVar[int] = 1

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        if "event_type" not in cls.__dict__:
            cls.event_type = cls.__name__
        if not isinstance(cls.schema_version, int) or cls.schema_version < 1:
            raise TypeError(f"{cls.__qualname__}.schema_version must be an int >= 1")
