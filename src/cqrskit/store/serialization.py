"""Event type registry, upcasters and the JSON encoding of events."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from cqrskit.errors import UnknownEventType
from cqrskit.messages import DomainEvent, Metadata

__all__ = ["EncodedEvent", "EventRegistry", "Upcaster"]

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

    def class_for(self, event_type: str) -> type[DomainEvent]:
        """The class registered for ``event_type``; :class:`UnknownEventType` if none."""
        try:
            return self._classes[event_type]
        except KeyError:
            raise UnknownEventType(event_type) from None

    def encode(self, event: DomainEvent) -> EncodedEvent:
        """Serialize an event (its class must be registered)."""
        cls = type(event)
        if self._classes.get(cls.event_type) is not cls:
            raise UnknownEventType(cls.event_type)
        metadata = event.metadata
        # What model_dump_json does with its defaults, without its Python wrapper: a
        # third cheaper per event, which shows in appends of many events.
        return EncodedEvent(
            cls.event_type,
            cls.schema_version,
            cls.__pydantic_serializer__.to_json(event, exclude=_EXCLUDE_METADATA).decode(),
            type(metadata).__pydantic_serializer__.to_json(metadata).decode(),
        )

    def decode(
        self, event_type: str, schema_version: int, data: str | bytes, metadata: str | bytes
    ) -> DomainEvent:
        """Rebuild an event from its stored form, upcasting old payloads on the way."""
        current = self._current.get(event_type)
        if (
            current is not None
            and current[0] == schema_version
            and type(data) is str
            and type(metadata) is str
            and data[-1:] == "}"
            and data[:1] == "{"
            and '"metadata"' not in data
        ):
            # The common case, kept cheap (read_all decodes every event through here):
            # one validation pass over one JSON text, the payload with the metadata
            # spliced in as its last member; about a third cheaper than parsing, then
            # validating the payload and the metadata separately. Stored texts come
            # from the store's own encoder or jsonb output: no surrounding whitespace.
            text = f'{data[:-1]}{", " if len(data) > 2 else ""}"metadata": {metadata}}}'
            return current[1].__pydantic_validator__.validate_json(text)  # type: ignore[no-any-return]
        return self._decode_general(event_type, schema_version, data, metadata)

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
