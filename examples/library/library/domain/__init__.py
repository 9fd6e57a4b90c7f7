"""The library's domain: aggregates, their events and the rules they keep.

It imports nothing but cqrskit's message and aggregate types: no store, no bus, no web.
"""

from library.domain.catalog import Copy, Title
from library.domain.errors import AlreadyExists, CopyUnavailable, LoanLimitReached, NotRenewable
from library.domain.events import (
    ALL_EVENTS,
    CopyAdded,
    CopyLent,
    CopyReturned,
    LoanClosed,
    LoanOpened,
    LoanRenewed,
    MemberBorrowed,
    MemberJoined,
    MemberReturned,
    TitleCatalogued,
)
from library.domain.loan import LOAN_PERIOD, MAX_RENEWALS, Loan
from library.domain.member import MAX_LOANS, Member

__all__ = [
    "ALL_EVENTS",
    "LOAN_PERIOD",
    "MAX_LOANS",
    "MAX_RENEWALS",
    "AlreadyExists",
    "Copy",
    "CopyAdded",
    "CopyLent",
    "CopyReturned",
    "CopyUnavailable",
    "Loan",
    "LoanClosed",
    "LoanLimitReached",
    "LoanOpened",
    "LoanRenewed",
    "Member",
    "MemberBorrowed",
    "MemberJoined",
    "MemberReturned",
    "NotRenewable",
    "Title",
    "TitleCatalogued",
]
