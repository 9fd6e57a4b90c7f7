"""The commands of the library (imperative: what a caller asks for) and their inputs."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from cqrskit import Command

__all__ = [
    "AddCopy",
    "Barcode",
    "CatalogueTitle",
    "Email",
    "Isbn",
    "JoinLibrary",
    "LendCopy",
    "Name",
    "RenewLoan",
    "ReturnCopy",
]

_ISBN = re.compile(r"[0-9]{9}[0-9X]|[0-9]{13}")


def _isbn(text: str) -> str:
    digits = text.replace("-", "").replace(" ", "").upper()
    if not _ISBN.fullmatch(digits):
        raise ValueError("an ISBN has 10 or 13 digits (hyphens and spaces are ignored)")
    return digits


Isbn = Annotated[str, AfterValidator(_isbn)]
"""An ISBN-10 or ISBN-13, hyphens and spaces removed: a title's id."""
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[str, StringConstraints(max_length=254, pattern=r"^[^@\s]+@[^@\s]+$")]
Barcode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,40}$")]
"""The label stuck on a copy: a copy's id."""


class JoinLibrary(Command):
    """Make someone a member; the member id is the command id."""

    name: Name
    email: Email


class CatalogueTitle(Command):
    """Add a book to the catalog, under its ISBN."""

    isbn: Isbn
    name: Name
    author: Name


class AddCopy(Command):
    """Put a new copy of a catalogued title on the shelf."""

    barcode: Barcode
    title_id: Isbn


class LendCopy(Command):
    """Lend a copy to a member; the loan id is the command id."""

    copy_id: Barcode
    member_id: str


class RenewLoan(Command):
    """Move a loan's due date; ``expected_version`` is the loan version the caller saw."""

    loan_id: str
    expected_version: int | None = None


class ReturnCopy(Command):
    """A copy came back to the desk: close its loan."""

    copy_id: Barcode
