"""Members: who may borrow, and how many copies they hold."""

from __future__ import annotations

from cqrskit import Aggregate, DomainError, DomainEvent
from library.domain.errors import LoanLimitReached
from library.domain.events import MemberBorrowed, MemberJoined, MemberReturned

__all__ = ["MAX_LOANS", "Member"]

MAX_LOANS = 3
"""How many copies one member may hold at once."""


class Member(Aggregate):
    """A library member. Their open loans live on their own stream, so two desks lending
    to the same member at once cannot both pass the limit: the second append conflicts."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.loans: set[str] = set()

    @classmethod
    def join(cls, member_id: str, name: str, email: str) -> Member:
        """A new member."""
        member = cls(member_id)
        member.record(MemberJoined(member_id=member_id, name=name, email=email))
        return member

    def borrow(self, loan_id: str) -> None:
        """Count a new loan against the member's limit."""
        if len(self.loans) >= MAX_LOANS:
            raise LoanLimitReached(self.id, MAX_LOANS)
        self.record(MemberBorrowed(member_id=self.id, loan_id=loan_id))

    def give_back(self, loan_id: str) -> None:
        """The member returned the copy of ``loan_id``."""
        if loan_id not in self.loans:
            raise DomainError(f"member {self.id} has no open loan {loan_id}")
        self.record(MemberReturned(member_id=self.id, loan_id=loan_id))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case MemberJoined(name=name):
                self.name = name
            case MemberBorrowed(loan_id=loan_id):
                self.loans.add(loan_id)
            case MemberReturned(loan_id=loan_id):
                self.loans.discard(loan_id)
            case _:
                super().apply(event)
