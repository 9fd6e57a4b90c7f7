"""cqrskit quickstart: an event-sourced bank account on the embedded SQLite store.

Run it with ``make run`` (or ``python examples/quickstart.py [path/to/events.db]``). Each
step prints what happened; run it twice and the second run continues the same account.
The read model lives beside the events, in ``<events>-read.db``.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from cqrskit import (
    Aggregate,
    Command,
    CommandBus,
    ConcurrencyError,
    DomainError,
    DomainEvent,
    EventRegistry,
    IdempotencyMiddleware,
    Projection,
    ProjectionRunner,
    RecordedEvent,
    Repository,
    RetryOnConflict,
    UnitOfWork,
    open_event_store,
    wait_for,
)
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork, open_sql_read_store

# -- the domain: events and an aggregate ----------------------------------------------


class AccountOpened(DomainEvent):
    owner: str


class MoneyDeposited(DomainEvent):
    amount: Decimal


class MoneyWithdrawn(DomainEvent):
    amount: Decimal


class Account(Aggregate):
    """A bank account that never goes below zero."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.owner = ""
        self.balance = Decimal(0)

    @classmethod
    def open(cls, id: str, owner: str) -> Account:
        account = cls(id)
        account.record(AccountOpened(owner=owner))
        return account

    def deposit(self, amount: Decimal) -> None:
        if amount <= 0:
            raise DomainError("a deposit must be positive")
        self.record(MoneyDeposited(amount=amount))

    def withdraw(self, amount: Decimal) -> None:
        if amount > self.balance:
            raise DomainError(f"cannot withdraw {amount}: the balance is {self.balance}")
        self.record(MoneyWithdrawn(amount=amount))

    def apply(self, event: DomainEvent) -> None:
        match event:
            case AccountOpened(owner=owner):
                self.owner = owner
            case MoneyDeposited(amount=amount):
                self.balance += amount
            case MoneyWithdrawn(amount=amount):
                self.balance -= amount
            case _:
                super().apply(event)


# -- the application: commands and their handlers --------------------------------------


class OpenAccount(Command):
    account_id: str
    owner: str


class Deposit(Command):
    account_id: str
    amount: Decimal


class Withdraw(Command):
    account_id: str
    amount: Decimal


async def open_account(command: OpenAccount, uow: UnitOfWork) -> str:
    if await uow.find(Account, command.account_id) is None:
        uow.add(Account.open(command.account_id, command.owner))
    return command.account_id


async def deposit(command: Deposit, uow: UnitOfWork) -> str:
    account = await uow.load(Account, command.account_id)
    account.deposit(command.amount)
    return account.id


async def withdraw(command: Withdraw, uow: UnitOfWork) -> str:
    account = await uow.load(Account, command.account_id)
    account.withdraw(command.amount)
    return account.id


# -- the read side: a projection into a SQL read model ---------------------------------


class Balances(Projection[SqlUnitOfWork]):
    """Each account's owner and balance, kept as a SQL table."""

    name = "balances"
    handles = (AccountOpened, MoneyDeposited, MoneyWithdrawn)
    tables = ("balances",)

    async def setup(self, uow: SqlUnitOfWork) -> None:
        await uow.execute(
            "CREATE TABLE {balances} (account TEXT PRIMARY KEY, owner TEXT, cents BIGINT)"
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        # Write-only: each event is one UPSERT, with no read per event.
        for recorded in events:
            account = recorded.stream_id
            match recorded.event:
                case AccountOpened(owner=owner):
                    await uow.execute(
                        "INSERT INTO {balances} VALUES (?, ?, 0) ON CONFLICT (account) "
                        "DO UPDATE SET owner = excluded.owner",
                        account,
                        owner,
                    )
                case MoneyDeposited(amount=amount) | MoneyWithdrawn(amount=amount):
                    sign = 1 if isinstance(recorded.event, MoneyDeposited) else -1
                    await uow.execute(
                        "UPDATE {balances} SET cents = cents + ? WHERE account = ?",
                        sign * int(amount * 100),
                        account,
                    )


def step(title: str) -> None:
    print(f"\n== {title}")


async def main(path: Path) -> None:
    registry = EventRegistry([AccountOpened, MoneyDeposited, MoneyWithdrawn])
    store = await open_event_store(f"sqlite:///{path}", registry)
    repository = Repository(store)
    bus = CommandBus(repository, [IdempotencyMiddleware(store), RetryOnConflict()])
    bus.register(OpenAccount, open_account)
    bus.register(Deposit, deposit)
    bus.register(Withdraw, withdraw)
    try:
        step(f"1. Commands go through the bus into the event store at {path}")
        result = await bus.send(OpenAccount(account_id="acc-1", owner="Ada"))
        print(f"OpenAccount -> id={result.aggregate_id} token={result.token}")
        first_deposit = Deposit(account_id="acc-1", amount=Decimal("100.00"))
        result = await bus.send(first_deposit)
        print(f"Deposit 100.00 -> token={result.token}")
        result = await bus.send(Withdraw(account_id="acc-1", amount=Decimal("30.00")))
        print(f"Withdraw 30.00 -> token={result.token}")

        step("2. Domain rules are checked before any event is recorded")
        try:
            await bus.send(Withdraw(account_id="acc-1", amount=Decimal("1000")))
        except DomainError as exc:
            print(f"Withdraw 1000 refused: {exc}")

        step("3. Sending the same command id again returns the first result, writes nothing")
        again = await bus.send(first_deposit)
        print(f"Deposit (same id) -> token={again.token} replayed={again.replayed}")

        step("4. The account's stream, as stored")
        for recorded in await store.read_stream(Account.stream_id_for("acc-1")):
            payload = recorded.event.model_dump(mode="json", exclude={"metadata"})
            print(
                f"v{recorded.version} @ {recorded.position}  {recorded.event.event_type} "
                f"{payload}  correlation={recorded.event.metadata.correlation_id}"
            )

        step("5. Replaying the stream rebuilds the aggregate")
        account = await repository.load(Account, "acc-1")
        print(f"{account.owner}'s balance: {account.balance} at version {account.version}")

        step("6. Optimistic concurrency: a stale writer is refused, nothing is written")
        stale = await repository.load(Account, "acc-1")
        fresh = await repository.load(Account, "acc-1")
        fresh.deposit(Decimal("5"))
        await repository.save(fresh)
        stale.deposit(Decimal("7"))
        try:
            await repository.save(stale)
        except ConcurrencyError as exc:
            print(f"refused: {exc}")

        step("7. Every event in global order (what projections read)")
        events = await store.read_all(limit=1000)
        print(f"{len(events)} events in the store, last position {await store.head()}")

        step("8. A projection keeps a read model; a token reads your own write")
        read_path = path.with_name(f"{path.stem}-read.db")
        read_store: SqlReadStore = await open_sql_read_store(f"sqlite:///{read_path}")
        try:
            async with ProjectionRunner(store) as runner:
                runner.add(Balances(), read_store)
                result = await bus.send(Deposit(account_id="acc-1", amount=Decimal("0.50")))
                waited = await wait_for(read_store, "balances", result.token, timeout=5.0)
                waited.raise_if_timed_out()
                [row] = await read_store.query(
                    "balances",
                    "SELECT owner, cents FROM {balances} WHERE account = ?",
                    Account.stream_id_for("acc-1"),
                )
                print(
                    f"read model at token {result.token} after {waited.elapsed * 1000:.1f} ms: "
                    f"{row['owner']} has {Decimal(row['cents']) / 100:.2f}"
                )
                account = await repository.load(Account, "acc-1")
                print(f"the aggregate agrees: {account.balance}")
        finally:
            await read_store.close()
    finally:
        await store.close()


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/quickstart.db")
    asyncio.run(main(target))
