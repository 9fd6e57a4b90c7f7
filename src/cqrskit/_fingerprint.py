"""Command fingerprints, kept with a command's idempotency record to spot a reused id.

An idempotency record stores one text value, the ``result_id``. To tell "the same command
again" from "another command under an id already used" without changing any store's
schema, the record's ``result_id`` holds both the result id and the command's
fingerprint: ``fp1:<64 hex digits>:<result id>``. Records written before fingerprints
existed hold the plain result id and decode as "no fingerprint" (never refused).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from cqrskit.errors import IdempotencyKeyReused
from cqrskit.messages import Message

__all__ = ["check_fingerprint", "decode_result_id", "encode_result_id", "fingerprint"]

_ENCODED: Final = re.compile(r"fp1:(?P<fingerprint>[0-9a-f]{64}):(?P<result_id>.*)", re.DOTALL)


def fingerprint(message: Message) -> str:
    """A digest of what ``message`` asks for: its type name and payload, not its metadata.

    The metadata is left out because a client's retry carries the same id but may carry
    another timestamp or correlation id; the request is the same all the same.
    """
    digest = hashlib.sha256(type(message).__qualname__.encode())
    digest.update(b"\0")
    digest.update(message.model_dump_json(exclude={"metadata"}).encode())
    return digest.hexdigest()


def encode_result_id(result_id: str, fingerprint: str | None) -> str:
    """The value to store as an idempotency record's ``result_id``."""
    return result_id if fingerprint is None else f"fp1:{fingerprint}:{result_id}"


def decode_result_id(stored: str) -> tuple[str, str | None]:
    """``(result_id, fingerprint)`` from a stored value; ``None`` when it holds no fingerprint."""
    match = _ENCODED.fullmatch(stored)
    if match is None:
        return stored, None
    return match.group("result_id"), match.group("fingerprint")


def check_fingerprint(stored: str, expected: str | None, message_id: str) -> str:
    """The plain result id of a replayed record, after checking it is the same command.

    Raises :class:`IdempotencyKeyReused` when both the record and the repeat carry a
    fingerprint and they differ.
    """
    result_id, recorded = decode_result_id(stored)
    if recorded is not None and expected is not None and recorded != expected:
        raise IdempotencyKeyReused(message_id)
    return result_id
