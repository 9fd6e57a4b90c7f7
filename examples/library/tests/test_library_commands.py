"""The command handlers through a real bus on an in-memory store: given events in
streams, when a command is sent, then exactly these new events per aggregate."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime

import pytest

from cqrskit import AggregateNotFound, DomainEvent, Metadata, UnexpectedVersion
from cqrskit.testing import CommandScenario
from library.application.commands import (
    AddCopy,
    CatalogueTitle,
    JoinLibrary,
    LendCopy,
    RenewLoan,
    ReturnCopy,
)
from library.application.handlers import COMMAND_HANDLERS
from library.bootstrap import event_registry
from library.domain import (
    AlreadyExists,
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
    Title,
    TitleCatalogued,
)

ISBN = "9780141439518"
LOAN_ID = "7f9c2ba4-e88f-4b2e-9d5a-0c1f2e3d4b5a"
MARCH_1 = Metadata(message_id=LOAN_ID, timestamp=datetime(2026, 3, 1, 10, tzinfo=UTC))


def scenario() -> CommandScenario:
    return CommandScenario(event_registry(), COMMAND_HANDLERS)


def shelf(
    s: CommandScenario,
    copy: Sequence[DomainEvent] = (),
    member: Sequence[DomainEvent] = (),
) -> CommandScenario:
    """A title with one copy, and a member; ``copy`` and ``member`` are further events of
    their streams."""
    return (
        s.given(Title, ISBN, TitleCatalogued(title_id=ISBN, name="Emma", author="Jane Austen"))
        .given(Copy, "B-1", CopyAdded(copy_id="B-1", title_id=ISBN), *copy)
        .given(
            Member,
            "M1",
            MemberJoined(member_id="M1", name="Ada", email="ada@example.com"),
            *member,
        )
    )


async def test_lending_claims_the_copy_counts_the_member_and_opens_the_loan() -> None:
    s = await shelf(scenario()).when(LendCopy(copy_id="B-1", member_id="M1", metadata=MARCH_1))
    assert s.result is not None
    assert s.result.aggregate_id == LOAN_ID
    await s.then(
        {
            (Copy, "B-1"): [CopyLent(copy_id="B-1", title_id=ISBN, loan_id=LOAN_ID)],
            (Member, "M1"): [MemberBorrowed(member_id="M1", loan_id=LOAN_ID)],
            (Loan, LOAN_ID): [
                LoanOpened(
                    loan_id=LOAN_ID,
                    member_id="M1",
                    copy_id="B-1",
                    title_id=ISBN,
                    lent_on=date(2026, 3, 1),
                    due_on=date(2026, 3, 22),
                )
            ],
        }
    )


async def test_a_copy_on_loan_is_refused_and_nothing_is_written() -> None:
    s = shelf(scenario(), copy=[CopyLent(copy_id="B-1", title_id=ISBN, loan_id="other")])
    await (await s.when(LendCopy(copy_id="B-1", member_id="M1"))).then_raises(CopyUnavailable)


async def test_a_member_at_the_limit_is_refused_and_the_copy_stays_on_the_shelf() -> None:
    s = shelf(
        scenario(), member=[MemberBorrowed(member_id="M1", loan_id=f"L{i}") for i in range(3)]
    )
    await (await s.when(LendCopy(copy_id="B-1", member_id="M1"))).then_raises(LoanLimitReached)


async def test_returning_closes_the_loan_on_all_three_streams() -> None:
    opened = LoanOpened(
        loan_id="L1",
        member_id="M1",
        copy_id="B-1",
        title_id=ISBN,
        lent_on=date(2026, 3, 1),
        due_on=date(2026, 3, 22),
    )
    s = shelf(
        scenario(),
        copy=[CopyLent(copy_id="B-1", title_id=ISBN, loan_id="L1")],
        member=[MemberBorrowed(member_id="M1", loan_id="L1")],
    ).given(Loan, "L1", opened)
    april = Metadata(timestamp=datetime(2026, 4, 2, tzinfo=UTC))
    await (await s.when(ReturnCopy(copy_id="B-1", metadata=april))).then(
        {
            (Copy, "B-1"): [CopyReturned(copy_id="B-1", title_id=ISBN, loan_id="L1")],
            (Loan, "L1"): [LoanClosed(loan_id="L1", returned_on=date(2026, 4, 2), days_late=11)],
            (Member, "M1"): [MemberReturned(member_id="M1", loan_id="L1")],
        }
    )


async def test_renewing_at_a_version_the_loan_has_left_is_refused() -> None:
    opened = LoanOpened(
        loan_id="L1",
        member_id="M1",
        copy_id="B-1",
        title_id=ISBN,
        lent_on=date(2026, 3, 1),
        due_on=date(2026, 3, 22),
    )
    march_10 = Metadata(timestamp=datetime(2026, 3, 10, tzinfo=UTC))
    s = (
        await scenario()
        .given(Loan, "L1", opened)
        .when(RenewLoan(loan_id="L1", expected_version=1, metadata=march_10))
    )
    await s.then({(Loan, "L1"): [LoanRenewed(loan_id="L1", due_on=date(2026, 3, 31), renewals=1)]})
    with pytest.raises(UnexpectedVersion):
        await s.bus.send(RenewLoan(loan_id="L1", expected_version=1))


async def test_catalogue_and_copies_refuse_duplicates_and_unknown_titles() -> None:
    s = scenario().given(Title, ISBN, TitleCatalogued(title_id=ISBN, name="Emma", author="Austen"))
    await (
        await s.when(CatalogueTitle(isbn="978-0-14-143951-8", name="Emma", author="Austen"))
    ).then_raises(AlreadyExists, match=ISBN)
    with pytest.raises(AggregateNotFound):
        await scenario().bus.send(AddCopy(barcode="B-9", title_id=ISBN))


async def test_joining_makes_a_member_named_by_the_command_id() -> None:
    s = await scenario().when(JoinLibrary(name=" Ada ", email="ada@example.com", metadata=MARCH_1))
    await s.then(
        {(Member, LOAN_ID): [MemberJoined(member_id=LOAN_ID, name="Ada", email="ada@example.com")]}
    )
