import os
import pickle
from datetime import UTC, datetime, timedelta, timezone
from uuid import RFC_4122, UUID, uuid4

import pytest
from pydantic import ValidationError

from cqrskit import Command, DomainEvent, Metadata
from cqrskit._ids import new_id


class Renamed(DomainEvent):
    name: str


class CustomNamed(DomainEvent):
    event_type = "shop.CustomNamed"
    schema_version = 3


class Rename(Command):
    name: str


def test_root_metadata_correlates_with_itself() -> None:
    meta = Metadata()
    assert meta.correlation_id == meta.message_id
    assert meta.causation_id is None
    assert meta.timestamp.tzinfo is not None


def test_caused_metadata_carries_lineage() -> None:
    command = Rename(name="x", metadata=Metadata(user_id="u1"))
    child = command.metadata.caused()
    assert child.correlation_id == command.metadata.correlation_id
    assert child.causation_id == command.metadata.message_id
    assert child.user_id == "u1"
    assert child.message_id != command.metadata.message_id
    grandchild = child.caused()
    assert grandchild.correlation_id == command.metadata.message_id
    assert grandchild.causation_id == child.message_id


def test_caused_keeps_the_childs_identity() -> None:
    event = Renamed(name="x")
    stamped = Metadata(user_id="bob").caused(event.metadata)
    assert (stamped.message_id, stamped.timestamp) == (
        event.metadata.message_id,
        event.metadata.timestamp,
    )


def test_timestamps_must_be_aware_and_become_utc() -> None:
    with pytest.raises(ValidationError):
        Metadata(timestamp=datetime(2026, 1, 1))
    local = datetime(2026, 1, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    assert Metadata(timestamp=local).timestamp == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert Metadata(timestamp=local).timestamp.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-01T10:00:00Z", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01T10:00:00+00:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
        ("2026-01-01T12:00:00+02:00", datetime(2026, 1, 1, 10, tzinfo=UTC)),
    ],
)
def test_json_timestamps_are_read_as_utc(text: str, expected: datetime) -> None:
    # Decoding takes a Python-free path for UTC texts; other offsets still convert.
    read = Metadata.model_validate_json(f'{{"timestamp": "{text}"}}').timestamp
    assert read == expected
    assert read.utcoffset() == timedelta(0)
    assert read.isoformat() == expected.isoformat()


@pytest.mark.parametrize("text", ["2026-01-01T10:00:00", "yesterday", ""])
def test_json_timestamps_without_an_offset_are_refused_with_one_error(text: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Metadata.model_validate_json(f'{{"timestamp": "{text}"}}')
    assert [(e["loc"], e["type"]) for e in refused.value.errors()] == [
        (("timestamp",), "datetime_with_offset")
    ]


def test_a_given_correlation_is_kept_and_a_missing_one_is_the_message_itself() -> None:
    root, other = uuid4(), uuid4()
    assert Metadata(message_id=root).correlation_id == root
    assert Metadata(message_id=root, correlation_id=other).correlation_id == other
    assert Metadata(message_id=root, correlation_id=None).correlation_id == root
    read = Metadata.model_validate_json(f'{{"message_id": "{root}"}}')
    assert read.correlation_id == root
    read = Metadata.model_validate_json(f'{{"message_id": "{root}", "correlation_id": null}}')
    assert read.correlation_id == root


def test_an_invalid_field_gives_one_error_for_that_field_only() -> None:
    with pytest.raises(ValidationError) as refused:
        Metadata.model_validate_json('{"message_id": "nope"}')
    assert [e["loc"] for e in refused.value.errors()] == [("message_id",)]


def test_messages_are_immutable_and_strict() -> None:
    command = Rename(name="x")
    with pytest.raises(ValidationError):
        command.name = "y"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        Rename(name="x", surprise=1)  # type: ignore[call-arg]


def test_event_type_names_and_versions() -> None:
    assert (Renamed.event_type, Renamed.schema_version) == ("Renamed", 1)
    assert (CustomNamed.event_type, CustomNamed.schema_version) == ("shop.CustomNamed", 3)


def test_schema_version_must_be_positive() -> None:
    with pytest.raises(TypeError, match="schema_version"):

        class Bad(DomainEvent):
            schema_version = 0


def test_with_metadata_replaces_only_metadata() -> None:
    event = Renamed(name="x")
    meta = Metadata(message_id=uuid4())
    copy = event.with_metadata(meta)
    assert copy.metadata == meta
    assert copy.name == "x"
    assert event.metadata != meta


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_message_ids_are_random_version_4_uuids_unique_across_fork() -> None:
    ids = [Metadata().message_id for _ in range(3000)]  # more than one batch of randomness
    assert len(set(ids)) == len(ids)
    for value in ids[:600]:
        assert type(value) is UUID
        assert (value.version, value.variant) == (4, RFC_4122)
        assert value == UUID(str(value))
        assert hash(value) == hash(UUID(str(value)))
        assert pickle.loads(pickle.dumps(value)) == value
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next id must not be the one its parent hands out next
        os.write(write, str(new_id()).encode())
        os._exit(0)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    os.close(write)
    assert UUID(child) != new_id()
