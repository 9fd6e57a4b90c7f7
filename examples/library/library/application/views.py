"""What queries answer (views), and the readers that build them from read models.

A reader is a small protocol: the projections module implements it for SQL and for
Redis, and the composition root picks one. Query handlers see only the protocol.
"""

from __future__ import annotations

from datetime import date
from typing import Protocol

from pydantic import BaseModel

__all__ = [
    "CatalogReader",
    "LoanReader",
    "LoanView",
    "MemberView",
    "OverdueLoan",
    "OverdueReport",
    "TitleView",
]


class MemberView(BaseModel):
    """A member and how many copies they hold."""

    member_id: str
    name: str
    email: str
    open_loans: int
    version: int


class LoanView(BaseModel):
    """One loan, open or closed; ``version`` is the loan's stream version (its ETag)."""

    loan_id: str
    member_id: str
    copy_id: str
    title_id: str
    lent_on: date
    due_on: date
    returned_on: date | None
    renewals: int
    days_late: int
    version: int


class TitleView(BaseModel):
    """A catalogued title with its number of copies and how many are on the shelf."""

    title_id: str
    name: str
    author: str
    copies: int
    available: int


class OverdueLoan(BaseModel):
    """An open loan past its due date."""

    loan_id: str
    member_id: str
    member_name: str
    copy_id: str
    title_id: str
    due_on: date
    days_overdue: int


class OverdueReport(BaseModel):
    """Every loan overdue on a day, the longest overdue first."""

    on: date
    loans: list[OverdueLoan]


class LoanReader(Protocol):
    """Reads the ``loans`` read model (members and loans)."""

    async def member(self, member_id: str) -> MemberView | None: ...

    async def loan(self, loan_id: str) -> LoanView | None: ...

    async def member_loans(self, member_id: str) -> list[LoanView]: ...

    async def overdue(self, on: date) -> OverdueReport: ...


class CatalogReader(Protocol):
    """Reads the ``catalog`` read model (titles and their copies)."""

    async def title(self, title_id: str) -> TitleView | None: ...
