"""Refuses, before anything is written, an event the store could not read back.

An event is stored as JSON and read back by validating that JSON into its class. Two kinds
of event pass ``append`` yet fail every later read of their stream: one holding a float NaN
or infinity (JSON has neither; pydantic writes ``null``), and one whose values do not
validate (built by ``model_construct`` or ``model_copy(update=...)``, which skip
validation). :func:`check_readback` finds both while the event is still in hand, so the
writer gets the error instead of every future reader.
"""

from __future__ import annotations

import dataclasses
import math
from datetime import UTC, datetime
from typing import Any, Final, cast
from uuid import UUID

from pydantic import BaseModel, ValidationError
from pydantic_core import CoreSchema, SchemaValidator

from cqrskit.errors import EventEncodingError
from cqrskit.messages import DomainEvent, Metadata

__all__ = ["check_readback", "refuse_unserializable"]


def check_readback(cls: type[DomainEvent], event: DomainEvent, data: str, metadata: str) -> None:
    """Raise :class:`EventEncodingError` unless ``data`` and ``metadata`` (the event's
    encoded JSON) validate back into ``cls`` and no float in the event is NaN or infinite.

    The validation is the one reading does (``decode``'s common case), on the same text;
    or, when the metadata is plainly readable (:func:`_plain_metadata`), of the payload
    alone against the class's fields: the same field validation, a quarter of the cost
    (the metadata's ids and time are most of a round trip's work).
    """
    if _may_hide_non_finite(data) or (
        # cqrskit's own Metadata has no float field; a subclass might.
        type(event.metadata) is not Metadata and _may_hide_non_finite(metadata)
    ):
        found = _non_finite(event, "")
        if found is not None:
            path, value = found
            raise EventEncodingError(
                cls.event_type,
                path,
                f"expected a finite number, got {value!r}: JSON has no NaN or infinity "
                "(it would be stored as null and could never be read back)",
            )
    try:
        payload = _payload_validator(cls)
        if payload is not None and _plain_metadata(event.metadata):
            payload.validate_json(data)
        else:
            text = f'{data[:-1]}{", " if len(data) > 2 else ""}"metadata": {metadata}}}'
            cls.__pydantic_validator__.validate_json(text)
    except ValidationError as exc:
        raise _not_readable(cls, event, exc) from exc


# class -> (the class validator it was made from, the payload validator or None)
_payload_validators: dict[type[DomainEvent], tuple[object, SchemaValidator | None]] = {}


def _payload_validator(cls: type[DomainEvent]) -> SchemaValidator | None:
    """A validator of ``cls``'s fields but its metadata, made once per class; ``None`` when
    the class needs the whole round trip: model validators (which see every field, the
    metadata too), or a schema of another shape (shared definitions)."""
    source = cls.__pydantic_validator__
    cached = _payload_validators.get(cls)
    # model_rebuild() replaces the class's validator: then make this one again.
    if cached is not None and cached[0] is source:
        return cached[1]
    validator: SchemaValidator | None = None
    schema = cls.__pydantic_core_schema__
    fields = schema.get("schema") if schema.get("type") == "model" else None
    if (
        isinstance(fields, dict)
        and fields.get("type") == "model-fields"
        and not cls.__pydantic_decorators__.model_validators
    ):
        own = {k: v for k, v in fields["fields"].items() if k != "metadata"}
        try:
            validator = SchemaValidator(
                cast(CoreSchema, {**fields, "fields": own}), schema.get("config")
            )
        except Exception:  # an unusual schema: the whole round trip still checks it
            validator = None
    _payload_validators[cls] = (source, validator)
    return validator


def _plain_metadata(metadata: Metadata) -> bool:
    """Whether ``metadata`` is cqrskit's own, its values of the exact types it validates
    to, so that its JSON reads back for sure (and need not be validated to know it)."""
    if type(metadata) is not Metadata:
        return False  # a subclass's extra fields would not read back into Metadata
    values = metadata.__dict__
    try:
        timestamp = values["timestamp"]
        return (
            len(values) == 5
            and type(values["message_id"]) is UUID
            and type(timestamp) is datetime
            # UTC, as Metadata's validator leaves every timestamp, spares the method call.
            and (timestamp.tzinfo is UTC or timestamp.utcoffset() is not None)
            and type(values["correlation_id"]) in _UUID_OR_NONE
            and type(values["causation_id"]) in _UUID_OR_NONE
            and type(values["user_id"]) in _STR_OR_NONE
        )
    except KeyError:
        return False


_UUID_OR_NONE: Final = frozenset({UUID, type(None)})
_STR_OR_NONE: Final = frozenset({str, type(None)})


def refuse_unserializable(cls: type[DomainEvent], exc: Exception) -> EventEncodingError:
    """The error for an event pydantic could not even serialize (a value of a type it
    cannot write as JSON, typically set by ``model_construct``)."""
    return EventEncodingError(cls.event_type, "", f"it cannot be serialized as JSON: {exc}")


def _may_hide_non_finite(text: str) -> bool:
    # How a non-finite float shows in pydantic's JSON, whatever the model's
    # ser_json_inf_nan ("null", the default; "constants": NaN, Infinity; "strings": "NaN",
    # "Infinity"). Text without any of them holds none, which spares the walk over the
    # event's values. Spelled out: five times cheaper than any() over a tuple.
    return "null" in text or "NaN" in text or "Infinity" in text


def _non_finite(value: object, path: str) -> tuple[str, float] | None:
    """The path and value of the first NaN or infinite float in ``value``, if any."""
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, value)
    children: list[tuple[str, object]]
    if isinstance(value, BaseModel):
        fields = dict(vars(value))
        fields.update(value.__pydantic_extra__ or {})
        children = [(f"{path}.{k}" if path else k, v) for k, v in fields.items()]
    elif isinstance(value, dict):
        children = [(f"{path}[{k!r}]", v) for k, v in value.items()]
    elif isinstance(value, list | tuple | set | frozenset):
        children = [(f"{path}[{i}]", v) for i, v in enumerate(value)]
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        children = [
            (f"{path}.{f.name}" if path else f.name, getattr(value, f.name))
            for f in dataclasses.fields(value)
        ]
    else:
        return None
    for child_path, child in children:
        found = _non_finite(child, child_path)
        if found is not None:
            return found
    return None


def _not_readable(
    cls: type[DomainEvent], event: DomainEvent, exc: ValidationError
) -> EventEncodingError:
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = first["loc"]
    path = "".join(
        f"[{part}]" if isinstance(part, int) else (f".{part}" if i else str(part))
        for i, part in enumerate(loc)
    )
    problem = "expected a value, but it is missing" if first["type"] == "missing" else first["msg"]
    given = _value_at(event, loc) if loc else _MISSING
    if given is not _MISSING:
        problem += f", got {given!r} ({type(given).__name__})"
    more = len(errors) - 1
    if more:
        problem += f" (and {more} more error{'s' if more > 1 else ''})"
    problem += (
        f"; stored as it is, it would not validate back into {cls.__qualname__} "
        "(was the event built without validation, by model_construct or "
        "model_copy(update=...)?)"
    )
    return EventEncodingError(cls.event_type, path, problem)


_MISSING: Final = object()


def _value_at(event: DomainEvent, loc: tuple[int | str, ...]) -> object:
    """The event's own value at a validation error's location, if it can be found."""
    value: Any = event
    for part in loc:
        try:
            if isinstance(value, BaseModel):
                value = getattr(value, str(part))
            elif isinstance(value, dict | list | tuple):
                value = cast(Any, value)[part]
            else:
                return _MISSING
        except (AttributeError, KeyError, IndexError, TypeError):
            return _MISSING
    return value
