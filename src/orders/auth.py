"""Who is calling: HS256 JWT bearer tokens with a role (staff or customer).

Staff may do everything; a customer (the token's subject is their customer id) may act
only on their own data. Tokens come only from the ``Authorization`` header.
"""

from __future__ import annotations

import os
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from uuid import UUID

import jwt

__all__ = [
    "AUDIENCE",
    "ISSUER",
    "InvalidToken",
    "Principal",
    "Role",
    "TokenService",
    "load_or_create_secret",
]

AUDIENCE = "orders-api"
ISSUER = "orders"
ALGORITHM = "HS256"


class Role(StrEnum):
    """What a caller may do."""

    STAFF = "staff"
    CUSTOMER = "customer"


class InvalidToken(Exception):
    """A token that is missing, malformed, wrongly signed, expired or not for this API."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    subject: str
    role: Role

    @property
    def is_staff(self) -> bool:
        """Whether the caller is staff."""
        return self.role is Role.STAFF

    @property
    def customer_id(self) -> UUID | None:
        """The caller's customer id, or ``None`` for staff."""
        return None if self.is_staff else UUID(self.subject)


VERIFIED_CACHE_SIZE = 1024
"""How many verified tokens :meth:`TokenService.verify` remembers (each until it expires)."""


class TokenService:
    """Issues and checks the service's tokens with one HS256 secret.

    A client sends the same token with every request, and decoding it (signature, claims)
    cost ~80 µs, a tenth of a GetOrder's CPU: a token that verified is remembered, whole
    and byte for byte, until its ``exp``, so a repeat is a dictionary lookup and a clock
    check. Only valid tokens are remembered, at most :data:`VERIFIED_CACHE_SIZE` of them.
    """

    def __init__(self, secret: str) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes long")
        self._secret = secret
        self._verified: dict[str, tuple[Principal, float]] = {}

    def issue(self, subject: str, role: Role, ttl: float = 24 * 3600) -> str:
        """A signed token for ``subject`` with ``role``, valid for ``ttl`` seconds."""
        if role is Role.CUSTOMER:
            UUID(subject)  # a customer's subject is their id: refuse anything else early
        now = int(time.time())
        claims = {
            "sub": subject,
            "role": role.value,
            "aud": AUDIENCE,
            "iss": ISSUER,
            "iat": now,
            "exp": now + int(ttl),
        }
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM)

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`InvalidToken` (saying why) otherwise."""
        known = self._verified.get(token)
        if known is not None:
            principal, expires = known
            if time.time() < expires:
                return principal
            del self._verified[token]
        principal, expires = self._decode(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            # Dropping all is cheaper than tracking use, and a service has few callers.
            self._verified.clear()
        self._verified[token] = (principal, expires)
        return principal

    def _decode(self, token: str) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],  # pinned: "none" and other algorithms are refused
                audience=AUDIENCE,
                issuer=ISSUER,
                options={"require": ["exp", "sub", "aud", "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("the token is not for this API (audience)") from None
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"the token is not valid: {exc}") from None
        try:
            role = Role(str(claims.get("role")))
            principal = Principal(str(claims["sub"]), role)
            principal.customer_id  # noqa: B018 - a customer's subject must be a UUID
        except ValueError:
            raise InvalidToken("the token's role or subject is not valid") from None
        return principal, float(claims["exp"])


def load_or_create_secret(data_dir: Path) -> str:
    """The secret kept in ``data_dir/jwt-secret``, created (readable by the owner only)
    on first use, so that tokens survive restarts of the embedded default."""
    path = data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    draft = path.with_name(f".jwt-secret-{secrets.token_hex(8)}")
    draft.write_text(secret)
    draft.chmod(0o600)
    try:
        # A hard link appears whole or not at all: of two processes starting at once,
        # one wins and the other reads the winner's complete secret.
        os.link(draft, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        draft.unlink()
    return secret
