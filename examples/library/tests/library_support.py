"""A few weeks at the library's desk, sent through the real command bus: the history the
projection and HTTP tests share."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta

from cqrskit import Command, EventStore, Metadata
from library.application.commands import (
    AddCopy,
    CatalogueTitle,
    JoinLibrary,
    LendCopy,
    RenewLoan,
    ReturnCopy,
)
from library.bootstrap import command_bus

EMMA, DUNE, BELOVED = "9780141439518", "9780441013593", "9781400033416"


class Desk:
    """Sends commands as if on ``day``, with ids that are the same on every run."""

    def __init__(self, events: EventStore) -> None:
        self.bus = command_bus(events)
        self.day = date(2026, 3, 1)
        self._sent = 0

    async def send(self, command: Command) -> str:
        self._sent += 1
        metadata = Metadata(
            message_id=uuid.uuid5(uuid.NAMESPACE_URL, f"library-desk/{self._sent}"),
            timestamp=datetime.combine(self.day, time(10), tzinfo=UTC),
        )
        return (await self.bus.send(command.with_metadata(metadata))).aggregate_id


async def busy_month(events: EventStore) -> dict[str, str]:
    """Titles, copies and members; loans lent, renewed, returned (one late) and lent
    again. On 2026-04-01 Ada's two loans are overdue. Returns the member ids by name."""
    desk = Desk(events)
    for isbn, name, author in (
        (EMMA, "Emma", "Jane Austen"),
        (DUNE, "Dune", "Frank Herbert"),
        (BELOVED, "Beloved", "Toni Morrison"),
    ):
        await desk.send(CatalogueTitle(isbn=isbn, name=name, author=author))
    for barcode, isbn in (("E-1", EMMA), ("E-2", EMMA), ("D-1", DUNE), ("D-2", DUNE)):
        await desk.send(AddCopy(barcode=barcode, title_id=isbn))
    await desk.send(AddCopy(barcode="B-1", title_id=BELOVED))
    members = {
        name: await desk.send(JoinLibrary(name=name, email=f"{name.lower()}@example.com"))
        for name in ("Ada", "Bob", "Cy", "Dee")
    }
    loans = {}
    for copy, member in (("E-1", "Ada"), ("D-1", "Ada"), ("E-2", "Bob"), ("B-1", "Cy")):
        loans[copy] = await desk.send(LendCopy(copy_id=copy, member_id=members[member]))
    desk.day += timedelta(days=9)  # 03-10
    await desk.send(RenewLoan(loan_id=loans["E-1"]))
    desk.day += timedelta(days=5)  # 03-15
    await desk.send(ReturnCopy(copy_id="E-2"))
    await desk.send(LendCopy(copy_id="E-2", member_id=members["Dee"]))
    desk.day += timedelta(days=10)  # 03-25, three days after B-1 was due
    await desk.send(ReturnCopy(copy_id="B-1"))
    await desk.send(LendCopy(copy_id="D-2", member_id=members["Bob"]))
    return members
