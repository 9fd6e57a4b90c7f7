"""Event type registry, upcasters and the JSON encoding of events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import orjson
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from cqrskit.errors import EventDecodeError, UnknownEventType, UnknownStoredEventType
from cqrskit.messages import DomainEvent, Metadata
from cqrskit.store._readback import check_readback, refuse_unserializable

__all__ = ["EncodedEvent", "EventRegistry", "UndecodableEvent", "Upcaster"]

E = TypeVar("E", bound=type[DomainEvent])

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns a stored payload of schema version N into the shape of version N + 1."""


@dataclass(frozen=True, slots=True)
class EncodedEvent:
    """An event ready to store: its registered name, schema version and JSON texts."""

    event_type: str
    schema_version: int
    data: str
    metadata: str


_EXCLUDE_METADATA = {"metadata"}
_new = object.__new__
_set_type, _set_schema, _set_data, _set_metadata = (
    vars(EncodedEvent)[name].__set__
    for name in ("event_type", "schema_version", "data", "metadata")
)


class UndecodableEvent(DomainEvent):
    """Stands in, in ``read_all``, for a stored event that could not be decoded.

    Its type is not registered, an upcaster is missing or failed, or its payload does not
    validate. The raw stored form and the error travel with it, so that a projection
    runner can treat it as one failing event (retried, then parked with what is needed to
    retry it, or faulted) instead of failing the whole page. It is never stored: no
    registry knows its class. ``metadata`` is the stored metadata when that still
    validates, fresh metadata otherwise.
    """

    event_type: ClassVar[str] = "cqrskit.UndecodableEvent"

    stored_type: str
    """The stored event type name."""
    stored_schema_version: int
    stored_data: str
    """The stored payload JSON, as stored."""
    stored_metadata: str
    """The stored metadata JSON, as stored."""
    reason: str
    """Why it could not be decoded: the error's type and message."""
    unregistered: bool = False
    """Whether the stored type, or its schema version, is unknown to the registry."""
    event_class: type[DomainEvent] | None = None
    """The class registered under ``stored_type``; ``None`` when the type is unknown."""

    def concerns(self, handles: tuple[type[DomainEvent], ...]) -> bool:
        """Whether a consumer of ``handles`` would have received this event decoded.

        When the stored type is not registered nobody can tell: then it concerns everyone.
        """
        return self.event_class is None or issubclass(self.event_class, handles)

    def error(self, stream_id: str, version: int, position: object) -> EventDecodeError:
        """The typed error for this event at its place in the store."""
        kind = UnknownStoredEventType if self.unregistered else EventDecodeError
        return kind(
            stream_id,
            version,
            str(position),
            self.stored_type,
            self.stored_schema_version,
            self.reason,
        )


def _unregistered(_text: str) -> DomainEvent:
    raise AssertionError("never called: no stored schema version is -1")


def spliced(data: str | bytes, metadata: str | bytes) -> str | None:
    """The stored payload with the stored metadata spliced in as its last member, for one
    validation pass over one JSON text (about a third cheaper than parsing, then validating
    the payload and the metadata separately); ``None`` for any other shape than the
    common one (bytes, surrounding whitespace, a payload member of its own named
    "metadata"), which takes the general path. Stored texts come from the store's own
    encoder or jsonb output: no surrounding whitespace."""
    if (
        type(data) is str
        and type(metadata) is str
        and data[-1:] == "}"
        and data[:1] == "{"
        and '"metadata"' not in data
    ):
        return f'{data[:-1]}{", " if len(data) > 2 else ""}"metadata": {metadata}}}'
    return None


def _text(value: str | bytes) -> str:
    return value if isinstance(value, str) else bytes(value).decode("utf-8", "replace")


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        # Without pydantic's "For further information visit <url>" lines.
        lines = str(exc).splitlines()
        return "ValidationError: " + "; ".join(
            line.strip() for line in lines if not line.strip().startswith("For further")
        )
    return f"{type(exc).__name__}: {exc}"


class EventRegistry:
    """Maps stored event names to classes and brings old payloads up to date.

    ``register`` is usable as a class decorator. Each event class registers under its
    ``event_type`` at its current ``schema_version``; ``add_upcaster(name, from_version, fn)``
    supplies the step from one stored version to the next.
    """

    def __init__(self, events: Iterable[type[DomainEvent]] = ()) -> None:
        self._classes: dict[str, type[DomainEvent]] = {}
        # event type -> (current schema version, class): the lookup every decoded event
        # makes, kept to one dict access.
        self._current: dict[str, tuple[int, type[DomainEvent]]] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        for cls in events:
            self.register(cls)

    def register(self, cls: E) -> E:
        """Register an event class under its ``event_type``; returns the class."""
        existing = self._classes.get(cls.event_type)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"event type {cls.event_type!r} is already registered to {existing.__qualname__}"
            )
        self._classes[cls.event_type] = cls
        # The class, not its validator: a class with forward references may complete
        # after registering, and model_rebuild() replaces the validator.
        self._current[cls.event_type] = (cls.schema_version, cls)
        return cls

    def add_upcaster(self, event_type: str, from_version: int, upcaster: Upcaster) -> None:
        """Register the step that turns ``event_type`` payloads of ``from_version`` into
        ``from_version + 1``."""
        key = (event_type, from_version)
        if key in self._upcasters:
            raise ValueError(f"an upcaster for {event_type!r} v{from_version} already exists")
        self._upcasters[key] = upcaster

    def __contains__(self, event_type: str) -> bool:
        return event_type in self._classes

    def _names_outside(self, types: tuple[type[DomainEvent], ...]) -> list[str]:
        """The registered names whose class is no subclass of any of ``types``: the stored
        events a read of only ``types`` passes over. Names the registry does not know are
        never among them (whether such an event is of ``types`` cannot be told)."""
        return [name for name, cls in self._classes.items() if not issubclass(cls, types)]

    def class_for(self, event_type: str) -> type[DomainEvent]:
        """The class registered for ``event_type``; :class:`UnknownEventType` if none."""
        try:
            return self._classes[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def encode(self, event: DomainEvent) -> EncodedEvent:
        """Serialize an event (its class must be registered).

        Raises :class:`~cqrskit.errors.EventEncodingError` for an event that could not be
        read back: one holding a float NaN or infinity, or a value that would not
        validate into its class.
        """
        cls = type(event)
        if self._classes.get(cls.event_type) is not cls:
            raise UnknownEventType(cls.event_type)
        metadata = event.metadata
        # What model_dump_json does with its defaults, without its Python wrapper: a
        # third cheaper per event, which shows in appends of many events.
        # No serializer warnings about values of the wrong type: check_readback refuses
        # exactly those that matter (the ones that would not read back), with a clear error.
        try:
            data = cls.__pydantic_serializer__.to_json(
                event, exclude=_EXCLUDE_METADATA, warnings=False
            ).decode()
            meta = type(metadata).__pydantic_serializer__.to_json(metadata, warnings=False).decode()
        except PydanticSerializationError as exc:
            raise refuse_unserializable(cls, exc) from exc
        check_readback(cls, event, data, meta)
        # Slots set directly: a frozen dataclass's __init__ costs three times as much.
        encoded: EncodedEvent = _new(EncodedEvent)
        _set_type(encoded, cls.event_type)
        _set_schema(encoded, cls.schema_version)
        _set_data(encoded, data)
        _set_metadata(encoded, meta)
        return encoded

    def decode(
        self, event_type: str, schema_version: int, data: str | bytes, metadata: str | bytes
    ) -> DomainEvent:
        """Rebuild an event from its stored form, upcasting old payloads on the way."""
        current, validate = self.current_validator(event_type)
        if current == schema_version:
            text = spliced(data, metadata)
            if text is not None:
                return validate(text)
        return self._decode_general(event_type, schema_version, data, metadata)

    def current_validator(self, event_type: str) -> tuple[int, Callable[[str], DomainEvent]]:
        """For ``event_type``: its current schema version and what decodes a stored event
        of that version from its :func:`spliced` text (its class's JSON validator), or
        ``(-1, ...)`` when the type is not registered.

        Looked up anew on every call (``model_rebuild()`` replaces a class's validator);
        a page of events looks it up once per type.
        """
        current = self._current.get(event_type)
        if current is None:
            return -1, _unregistered
        return current[0], current[1].__pydantic_validator__.validate_json

    def undecodable(
        self,
        event_type: str,
        schema_version: int,
        data: str | bytes,
        metadata: str | bytes,
        exc: Exception,
    ) -> UndecodableEvent:
        """The stand-in for a stored event that :meth:`decode` failed on with ``exc``."""
        try:
            meta = Metadata.model_validate_json(metadata)
        except ValueError:
            meta = Metadata()
        return UndecodableEvent(
            stored_type=event_type,
            stored_schema_version=schema_version,
            stored_data=_text(data),
            stored_metadata=_text(metadata),
            reason=_reason(exc),
            unregistered=isinstance(exc, UnknownEventType),
            event_class=self._classes.get(event_type),
            metadata=meta,
        )

    def _decode_general(
        self, event_type: str, schema_version: int, data: str | bytes, metadata: str | bytes
    ) -> DomainEvent:
        # Any other shape (bytes, surrounding whitespace, a payload member of its own named
        # "metadata") or an older schema version: parse, upcast, then validate.
        cls = self.class_for(event_type)
        payload: dict[str, Any] = orjson.loads(data)
        version = schema_version
        while version < cls.schema_version:
            step = self._upcasters.get((event_type, version))
            if step is None:
                raise UnknownEventType(event_type, version)
            payload = step(payload)
            version += 1
        if version != cls.schema_version:
            # Stored by a newer program: reading it with an older class would lose data.
            raise UnknownEventType(event_type, schema_version)
        payload["metadata"] = Metadata.model_validate_json(metadata)
        return cls.model_validate(payload)
