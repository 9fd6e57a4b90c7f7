"""The library's rules, as typed errors: each becomes a problem+json answer over HTTP."""

from __future__ import annotations

from cqrskit import DomainError

__all__ = ["AlreadyExists", "CopyUnavailable", "LoanLimitReached", "NotRenewable"]


class AlreadyExists(DomainError):
    """A member, title or copy with this id exists already."""

    def __init__(self, what: str, id: str) -> None:
        self.id = id
        super().__init__(f"{what} {id!r} already exists")


class CopyUnavailable(DomainError):
    """The copy is out on another loan."""

    def __init__(self, copy_id: str, loan_id: str) -> None:
        self.copy_id = copy_id
        super().__init__(f"copy {copy_id!r} is on loan ({loan_id})")


class LoanLimitReached(DomainError):
    """The member already holds as many copies as a member may."""

    def __init__(self, member_id: str, limit: int) -> None:
        self.member_id = member_id
        super().__init__(f"member {member_id} already has {limit} copies on loan")


class NotRenewable(DomainError):
    """The loan may not be renewed (returned, overdue, or renewed too often)."""

    def __init__(self, loan_id: str, reason: str) -> None:
        self.loan_id = loan_id
        super().__init__(f"loan {loan_id} cannot be renewed: {reason}")
