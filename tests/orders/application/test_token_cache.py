"""A verified token is remembered until it expires: decoding it again on every request
cost a tenth of a GetOrder's CPU. What is remembered must never let through a token that
the full check would refuse."""

from __future__ import annotations

import time

import jwt
import pytest

from orders.auth import InvalidToken, Role, TokenService

SECRET = "token-cache-secret-" + "s" * 40


def _counting_decode(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    decoded: list[str] = []
    real = jwt.decode

    def decode(token: str, *args: object, **kwargs: object) -> object:
        decoded.append(token)
        return real(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", decode)
    return decoded


def test_a_repeated_token_is_decoded_once(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = _counting_decode(monkeypatch)
    tokens = TokenService(SECRET)
    token = tokens.issue("staff", Role.STAFF)
    first, second = tokens.verify(token), tokens.verify(token)
    assert first == second
    assert decoded == [token]


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    tokens = TokenService(SECRET)
    token = tokens.issue("staff", Role.STAFF, ttl=1)
    tokens.verify(token)
    expires = jwt.decode(token, options={"verify_signature": False})["exp"]
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(token)


def test_refused_tokens_are_checked_every_time(monkeypatch: pytest.MonkeyPatch) -> None:
    decoded = _counting_decode(monkeypatch)
    tokens = TokenService(SECRET)
    forged = TokenService("another-secret-" + "x" * 40).issue("staff", Role.STAFF)
    for _ in range(2):
        with pytest.raises(InvalidToken):
            tokens.verify(forged)
    assert decoded == [forged, forged]


def test_a_token_is_remembered_for_its_own_service_only() -> None:
    token = TokenService(SECRET).issue("staff", Role.STAFF)
    TokenService(SECRET).verify(token)
    with pytest.raises(InvalidToken):
        TokenService("another-secret-" + "x" * 40).verify(token)
