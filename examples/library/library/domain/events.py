"""Everything that can happen in the library, as events (past tense, immutable)."""

from __future__ import annotations

from datetime import date

from cqrskit import DomainEvent

__all__ = [
    "ALL_EVENTS",
    "CopyAdded",
    "CopyLent",
    "CopyReturned",
    "LoanClosed",
    "LoanOpened",
    "LoanRenewed",
    "MemberBorrowed",
    "MemberJoined",
    "MemberReturned",
    "TitleCatalogued",
]


class MemberJoined(DomainEvent):
    """Someone became a member."""

    member_id: str
    name: str
    email: str


class MemberBorrowed(DomainEvent):
    """A member took a loan: it counts against their limit until they return it."""

    member_id: str
    loan_id: str


class MemberReturned(DomainEvent):
    """A member brought back the copy of a loan."""

    member_id: str
    loan_id: str


class TitleCatalogued(DomainEvent):
    """A book entered the catalog; its id is its ISBN."""

    title_id: str
    name: str
    author: str


class CopyAdded(DomainEvent):
    """A physical copy of a title, known by its barcode, went on the shelf."""

    copy_id: str
    title_id: str


class CopyLent(DomainEvent):
    """A copy left the shelf on a loan."""

    copy_id: str
    title_id: str
    loan_id: str


class CopyReturned(DomainEvent):
    """A copy came back to the shelf."""

    copy_id: str
    title_id: str
    loan_id: str


class LoanOpened(DomainEvent):
    """A member borrowed a copy until ``due_on``."""

    loan_id: str
    member_id: str
    copy_id: str
    title_id: str
    lent_on: date
    due_on: date


class LoanRenewed(DomainEvent):
    """A loan's due date moved later."""

    loan_id: str
    due_on: date
    renewals: int


class LoanClosed(DomainEvent):
    """The copy of a loan came back, ``days_late`` days after it was due (0 if on time)."""

    loan_id: str
    returned_on: date
    days_late: int


ALL_EVENTS: tuple[type[DomainEvent], ...] = (
    MemberJoined,
    MemberBorrowed,
    MemberReturned,
    TitleCatalogued,
    CopyAdded,
    CopyLent,
    CopyReturned,
    LoanOpened,
    LoanRenewed,
    LoanClosed,
)
"""Every event type of the service, for its event registry."""
