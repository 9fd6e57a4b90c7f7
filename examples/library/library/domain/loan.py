"""Loans: a copy lent to a member until a due date, renewed at most twice."""

from __future__ import annotations

from datetime import date, timedelta

from cqrskit import Aggregate, DomainError, DomainEvent
from library.domain.errors import NotRenewable
from library.domain.events import LoanClosed, LoanOpened, LoanRenewed

__all__ = ["LOAN_PERIOD", "MAX_RENEWALS", "Loan"]

LOAN_PERIOD = timedelta(days=21)
MAX_RENEWALS = 2


class Loan(Aggregate):
    """A copy lent to a member, from the day it is lent until it comes back."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.member_id = ""
        self.copy_id = ""
        self.due_on = date.min
        self.renewals = 0
        self.returned_on: date | None = None

    @classmethod
    def open(cls, loan_id: str, member_id: str, copy_id: str, title_id: str, on: date) -> Loan:
        """A loan starting ``on``, due one loan period later."""
        loan = cls(loan_id)
        loan.record(
            LoanOpened(
                loan_id=loan_id,
                member_id=member_id,
                copy_id=copy_id,
                title_id=title_id,
                lent_on=on,
                due_on=on + LOAN_PERIOD,
            )
        )
        return loan

    def renew(self, on: date) -> None:
        """Move the due date to one loan period after ``on``."""
        if self.returned_on is not None:
            raise NotRenewable(self.id, "the copy was returned")
        if on > self.due_on:
            raise NotRenewable(self.id, f"it was due on {self.due_on}")
        if self.renewals >= MAX_RENEWALS:
            raise NotRenewable(self.id, f"it was renewed {MAX_RENEWALS} times already")
        self.record(
            LoanRenewed(loan_id=self.id, due_on=on + LOAN_PERIOD, renewals=self.renewals + 1)
        )

    def close(self, on: date) -> None:
        """The copy came back ``on``."""
        if self.returned_on is not None:
            raise DomainError(f"loan {self.id} was closed on {self.returned_on}")
        days_late = max(0, (on - self.due_on).days)
        self.record(LoanClosed(loan_id=self.id, returned_on=on, days_late=days_late))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case LoanOpened(member_id=member_id, copy_id=copy_id, due_on=due_on):
                self.member_id, self.copy_id, self.due_on = member_id, copy_id, due_on
            case LoanRenewed(due_on=due_on, renewals=renewals):
                self.due_on, self.renewals = due_on, renewals
            case LoanClosed(returned_on=returned_on):
                self.returned_on = returned_on
            case _:
                super().apply(event)
