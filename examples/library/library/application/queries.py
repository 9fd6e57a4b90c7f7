"""The queries of the library and their handlers: they read read models, nothing else."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from cqrskit import Query
from library.application.views import (
    CatalogReader,
    LoanReader,
    LoanView,
    MemberView,
    OverdueReport,
    TitleView,
)

__all__ = [
    "GetLoan",
    "GetMember",
    "GetOverdueLoans",
    "GetTitle",
    "ListMemberLoans",
    "query_handlers",
]


class GetMember(Query[MemberView | None]):
    """A member, or ``None``."""

    member_id: str


class GetLoan(Query[LoanView | None]):
    """A loan, or ``None``."""

    loan_id: str


class ListMemberLoans(Query[list[LoanView]]):
    """A member's loans, the newest first."""

    member_id: str


class GetTitle(Query[TitleView | None]):
    """A title with its copies, or ``None``."""

    title_id: str


class GetOverdueLoans(Query[OverdueReport]):
    """The overdue report: open loans due before ``on``."""

    on: date


def query_handlers(
    loans: LoanReader, catalog: CatalogReader
) -> dict[type[Query[Any]], Callable[[Any], Awaitable[Any]]]:
    """A handler for every query, reading ``loans`` and ``catalog``, to register on a bus."""

    async def get_member(query: GetMember) -> MemberView | None:
        return await loans.member(query.member_id)

    async def get_loan(query: GetLoan) -> LoanView | None:
        return await loans.loan(query.loan_id)

    async def list_member_loans(query: ListMemberLoans) -> list[LoanView]:
        return await loans.member_loans(query.member_id)

    async def get_title(query: GetTitle) -> TitleView | None:
        return await catalog.title(query.title_id)

    async def get_overdue_loans(query: GetOverdueLoans) -> OverdueReport:
        return await loans.overdue(query.on)

    return {
        GetMember: get_member,
        GetLoan: get_loan,
        ListMemberLoans: list_member_loans,
        GetTitle: get_title,
        GetOverdueLoans: get_overdue_loans,
    }
