"""Command handlers: load aggregates through the unit of work, apply the rules, return an id.

The bus commits whatever a handler touched as one atomic append, so a loan, its copy
and its member change together or not at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any

from cqrskit import Command, CommandHandler, UnitOfWork
from library.application.commands import (
    AddCopy,
    CatalogueTitle,
    JoinLibrary,
    LendCopy,
    RenewLoan,
    ReturnCopy,
)
from library.domain import AlreadyExists, Copy, Loan, Member, Title

__all__ = [
    "COMMAND_HANDLERS",
    "add_copy",
    "catalogue_title",
    "day_of",
    "join_library",
    "lend_copy",
    "renew_loan",
    "return_copy",
]


def day_of(command: Command) -> date:
    """The day (UTC) a command was sent. Taken from the command, not from the clock, so
    that handling it again (a retry after a conflict) decides the same way."""
    return command.metadata.timestamp.date()


async def join_library(command: JoinLibrary, uow: UnitOfWork) -> str:
    """A new member, whose id is the command's id (a repeated request names the same one)."""
    member_id = str(command.metadata.message_id)
    uow.add(Member.join(member_id, command.name, command.email))
    return member_id


async def catalogue_title(command: CatalogueTitle, uow: UnitOfWork) -> str:
    """A new title; an ISBN is catalogued once."""
    if await uow.find(Title, command.isbn) is not None:
        raise AlreadyExists("title", command.isbn)
    uow.add(Title.catalogue(command.isbn, command.name, command.author))
    return command.isbn


async def add_copy(command: AddCopy, uow: UnitOfWork) -> str:
    """A new copy of a catalogued title (``AggregateNotFound`` if it is not)."""
    title = await uow.load(Title, command.title_id)
    if await uow.find(Copy, command.barcode) is not None:
        raise AlreadyExists("copy", command.barcode)
    uow.add(Copy.add(command.barcode, title.id))
    return command.barcode


async def lend_copy(command: LendCopy, uow: UnitOfWork) -> str:
    """Open a loan: the copy is claimed and the member's limit counted in the same append."""
    loan_id = str(command.metadata.message_id)
    copy = await uow.load(Copy, command.copy_id)
    member = await uow.load(Member, command.member_id)
    copy.lend(loan_id)
    member.borrow(loan_id)
    uow.add(Loan.open(loan_id, member.id, copy.id, copy.title_id, day_of(command)))
    return loan_id


async def renew_loan(command: RenewLoan, uow: UnitOfWork) -> str:
    """Renew a loan, only at the version the caller saw when it gives one (If-Match)."""
    loan = await uow.load(Loan, command.loan_id, expected_version=command.expected_version)
    loan.renew(day_of(command))
    return loan.id


async def return_copy(command: ReturnCopy, uow: UnitOfWork) -> str:
    """Close the copy's loan and free the member's slot; the id of the closed loan."""
    copy = await uow.load(Copy, command.copy_id)
    loan_id = copy.take_back()
    loan = await uow.load(Loan, loan_id)
    loan.close(day_of(command))
    member = await uow.load(Member, loan.member_id)
    member.give_back(loan_id)
    return loan_id


COMMAND_HANDLERS: Mapping[type[Command], CommandHandler[Any]] = {
    JoinLibrary: join_library,
    CatalogueTitle: catalogue_title,
    AddCopy: add_copy,
    LendCopy: lend_copy,
    RenewLoan: renew_loan,
    ReturnCopy: return_copy,
}
"""The handler of every command, to register on a command bus."""
