"""The ``loans`` read model (SQL): members with their open-loan count, and every loan.

Each row keeps the version of the stream it mirrors, and every change applies only to
an older row, so a replayed event changes nothing and a parked event retried later,
out of order, cannot undo a newer change. That is what lets this model park a failing
event and go on.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from cqrskit import FailurePolicy, Projection, RecordedEvent
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork
from library.application.views import LoanView, MemberView, OverdueLoan, OverdueReport
from library.domain.events import (
    LoanClosed,
    LoanOpened,
    LoanRenewed,
    MemberBorrowed,
    MemberJoined,
    MemberReturned,
)

__all__ = ["LoansProjection", "SqlLoanReader"]


class LoansProjection(Projection[SqlUnitOfWork]):
    """Builds ``loans``; read it with :class:`SqlLoanReader`."""

    name = "loans"
    version = 1
    handles = (MemberJoined, MemberBorrowed, MemberReturned, LoanOpened, LoanRenewed, LoanClosed)
    tables = ("members", "loans")
    failure_policy = FailurePolicy(retries=3, backoff=0.1, then="park")

    async def setup(self, uow: SqlUnitOfWork) -> None:
        """Create the tables (dates are ISO text: portable, and they sort as dates)."""
        await uow.execute(
            "CREATE TABLE {members} (member_id TEXT PRIMARY KEY, name TEXT NOT NULL, "
            "email TEXT NOT NULL, open_loans BIGINT NOT NULL, version BIGINT NOT NULL)"
        )
        await uow.execute(
            "CREATE TABLE {loans} (loan_id TEXT PRIMARY KEY, member_id TEXT NOT NULL, "
            "copy_id TEXT NOT NULL, title_id TEXT NOT NULL, lent_on TEXT NOT NULL, "
            "due_on TEXT NOT NULL, returned_on TEXT, renewals BIGINT NOT NULL, "
            "days_late BIGINT NOT NULL, version BIGINT NOT NULL)"
        )
        await uow.execute("CREATE INDEX {loans}_by_member ON {loans} (member_id, lent_on)")
        await uow.execute(
            "CREATE INDEX {loans}_open_by_due ON {loans} (due_on) WHERE returned_on IS NULL"
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        """Write each event's effect, guarded by its stream version."""
        for recorded in events:
            version = recorded.version
            match recorded.event:
                case MemberJoined(member_id=member_id, name=name, email=email):
                    await uow.execute(
                        "INSERT INTO {members} VALUES (?, ?, ?, 0, ?) "
                        "ON CONFLICT (member_id) DO NOTHING",
                        member_id,
                        name,
                        email,
                        version,
                    )
                case MemberBorrowed(member_id=member_id) | MemberReturned(member_id=member_id):
                    step = 1 if isinstance(recorded.event, MemberBorrowed) else -1
                    await uow.execute(
                        "UPDATE {members} SET open_loans = open_loans + ?, version = ? "
                        "WHERE member_id = ? AND version < ?",
                        step,
                        version,
                        member_id,
                        version,
                    )
                case LoanOpened() as opened:
                    await uow.execute(
                        "INSERT INTO {loans} VALUES (?, ?, ?, ?, ?, ?, NULL, 0, 0, ?) "
                        "ON CONFLICT (loan_id) DO NOTHING",
                        opened.loan_id,
                        opened.member_id,
                        opened.copy_id,
                        opened.title_id,
                        opened.lent_on.isoformat(),
                        opened.due_on.isoformat(),
                        version,
                    )
                case LoanRenewed(loan_id=loan_id, due_on=due_on, renewals=renewals):
                    await uow.execute(
                        "UPDATE {loans} SET due_on = ?, renewals = ?, version = ? "
                        "WHERE loan_id = ? AND version < ?",
                        due_on.isoformat(),
                        renewals,
                        version,
                        loan_id,
                        version,
                    )
                case LoanClosed(loan_id=loan_id, returned_on=returned_on, days_late=late):
                    await uow.execute(
                        "UPDATE {loans} SET returned_on = ?, days_late = ?, version = ? "
                        "WHERE loan_id = ? AND version < ?",
                        returned_on.isoformat(),
                        late,
                        version,
                        loan_id,
                        version,
                    )


def _loan(row: Any) -> LoanView:
    returned = row["returned_on"]
    return LoanView(
        loan_id=row["loan_id"],
        member_id=row["member_id"],
        copy_id=row["copy_id"],
        title_id=row["title_id"],
        lent_on=date.fromisoformat(row["lent_on"]),
        due_on=date.fromisoformat(row["due_on"]),
        returned_on=None if returned is None else date.fromisoformat(returned),
        renewals=row["renewals"],
        days_late=row["days_late"],
        version=row["version"],
    )


class SqlLoanReader:
    """Answers from the ``loans`` read model (a ``LoanReader``)."""

    def __init__(self, store: SqlReadStore) -> None:
        self.store = store

    async def member(self, member_id: str) -> MemberView | None:
        row = await self.store.fetchone(
            "loans", "SELECT * FROM {members} WHERE member_id = ?", member_id
        )
        return None if row is None else MemberView(**dict(row))

    async def loan(self, loan_id: str) -> LoanView | None:
        row = await self.store.fetchone("loans", "SELECT * FROM {loans} WHERE loan_id = ?", loan_id)
        return None if row is None else _loan(row)

    async def member_loans(self, member_id: str) -> list[LoanView]:
        rows = await self.store.query(
            "loans",
            "SELECT * FROM {loans} WHERE member_id = ? ORDER BY lent_on DESC, loan_id",
            member_id,
        )
        return [_loan(row) for row in rows]

    async def overdue(self, on: date) -> OverdueReport:
        rows = await self.store.query(
            "loans",
            "SELECT l.loan_id, l.member_id, m.name, l.copy_id, l.title_id, l.due_on "
            "FROM {loans} l JOIN {members} m ON m.member_id = l.member_id "
            "WHERE l.returned_on IS NULL AND l.due_on < ? ORDER BY l.due_on, l.loan_id",
            on.isoformat(),
        )
        loans = []
        for row in rows:
            due_on = date.fromisoformat(row["due_on"])
            loans.append(
                OverdueLoan(
                    loan_id=row["loan_id"],
                    member_id=row["member_id"],
                    member_name=row["name"],
                    copy_id=row["copy_id"],
                    title_id=row["title_id"],
                    due_on=due_on,
                    days_overdue=(on - due_on).days,
                )
            )
        return OverdueReport(on=on, loans=loans)
