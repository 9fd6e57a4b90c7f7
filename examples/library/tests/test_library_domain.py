"""The library's rules, one aggregate at a time: given past events, when a method runs,
then these new events (or this error)."""

from __future__ import annotations

from datetime import date

from cqrskit import DomainError
from cqrskit.testing import AggregateScenario
from library.domain import (
    MAX_LOANS,
    Copy,
    CopyAdded,
    CopyLent,
    CopyReturned,
    CopyUnavailable,
    Loan,
    LoanClosed,
    LoanLimitReached,
    LoanOpened,
    LoanRenewed,
    Member,
    MemberBorrowed,
    MemberJoined,
    MemberReturned,
    NotRenewable,
)

OPENED = LoanOpened(
    loan_id="L1",
    member_id="M1",
    copy_id="B-1",
    title_id="9780141439518",
    lent_on=date(2026, 3, 1),
    due_on=date(2026, 3, 22),
)


def test_a_copy_on_the_shelf_is_lent() -> None:
    AggregateScenario(Copy, "B-1").given(CopyAdded(copy_id="B-1", title_id="T")).when(
        lambda copy: copy.lend("L1")
    ).then(CopyLent(copy_id="B-1", title_id="T", loan_id="L1"))


def test_a_copy_out_on_loan_cannot_be_lent_again() -> None:
    AggregateScenario(Copy, "B-1").given(
        CopyAdded(copy_id="B-1", title_id="T"), CopyLent(copy_id="B-1", title_id="T", loan_id="L1")
    ).when(lambda copy: copy.lend("L2")).then_raises(CopyUnavailable, match="on loan (L1)")


def test_a_returned_copy_names_its_loan_and_can_be_lent_again() -> None:
    scenario = AggregateScenario(Copy, "B-1").given(
        CopyAdded(copy_id="B-1", title_id="T"), CopyLent(copy_id="B-1", title_id="T", loan_id="L1")
    )
    scenario.when(lambda copy: copy.take_back()).then(
        CopyReturned(copy_id="B-1", title_id="T", loan_id="L1")
    )
    assert isinstance(scenario.aggregate, Copy)
    assert scenario.aggregate.loan_id is None
    AggregateScenario(Copy, "B-1").given(CopyAdded(copy_id="B-1", title_id="T")).when(
        lambda copy: copy.take_back()
    ).then_raises(DomainError, match="not on loan")


def test_a_member_holds_at_most_the_limit() -> None:
    joined = MemberJoined(member_id="M1", name="Ada", email="ada@example.com")
    borrowed = [MemberBorrowed(member_id="M1", loan_id=f"L{i}") for i in range(MAX_LOANS)]
    AggregateScenario(Member, "M1").given(joined, *borrowed[:-1]).when(
        lambda member: member.borrow("L9")
    ).then(MemberBorrowed(member_id="M1", loan_id="L9"))
    AggregateScenario(Member, "M1").given(joined, *borrowed).when(
        lambda member: member.borrow("L9")
    ).then_raises(LoanLimitReached, match=f"already has {MAX_LOANS} copies")
    AggregateScenario(Member, "M1").given(
        joined, *borrowed, MemberReturned(member_id="M1", loan_id="L0")
    ).when(lambda member: member.borrow("L9")).then(MemberBorrowed(member_id="M1", loan_id="L9"))


def test_a_loan_is_renewed_twice_before_it_is_due() -> None:
    AggregateScenario(Loan, "L1").given(OPENED).when(
        lambda loan: loan.renew(date(2026, 3, 20))
    ).then(LoanRenewed(loan_id="L1", due_on=date(2026, 4, 10), renewals=1))
    AggregateScenario(Loan, "L1").given(
        OPENED,
        LoanRenewed(loan_id="L1", due_on=date(2026, 4, 10), renewals=1),
        LoanRenewed(loan_id="L1", due_on=date(2026, 5, 1), renewals=2),
    ).when(lambda loan: loan.renew(date(2026, 4, 30))).then_raises(NotRenewable, match="2 times")


def test_an_overdue_or_returned_loan_is_not_renewed() -> None:
    AggregateScenario(Loan, "L1").given(OPENED).when(
        lambda loan: loan.renew(date(2026, 3, 23))
    ).then_raises(NotRenewable, match="due on 2026-03-22")
    closed = LoanClosed(loan_id="L1", returned_on=date(2026, 3, 2), days_late=0)
    AggregateScenario(Loan, "L1").given(OPENED, closed).when(
        lambda loan: loan.renew(date(2026, 3, 3))
    ).then_raises(NotRenewable, match="returned")


def test_closing_a_loan_counts_the_days_late() -> None:
    AggregateScenario(Loan, "L1").given(OPENED).when(
        lambda loan: loan.close(date(2026, 3, 25))
    ).then(LoanClosed(loan_id="L1", returned_on=date(2026, 3, 25), days_late=3))
    AggregateScenario(Loan, "L1").given(OPENED).when(
        lambda loan: loan.close(date(2026, 3, 2))
    ).then(LoanClosed(loan_id="L1", returned_on=date(2026, 3, 2), days_late=0))
