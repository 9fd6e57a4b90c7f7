"""The customers read model (SQL): each customer's profile.

Table ``customers__customers_v1``: customer_id -> name, email, registered_at
(microseconds since the epoch, UTC) and version (the customer stream's version).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from cqrskit.projection import Projection
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork
from cqrskit.store.base import RecordedEvent
from orders.application.views import CustomerView
from orders.domain.events import CustomerRegistered
from orders.projections._common import PARK, from_micros, id_column, micros, occurred_at

__all__ = ["CustomerProjection", "SqlCustomerReader"]

NAME = "customers"


class CustomerProjection(Projection[SqlUnitOfWork]):
    """Builds the ``customers`` read model; read it with :class:`SqlCustomerReader`."""

    name = NAME
    version = 1
    handles = (CustomerRegistered,)
    tables = ("customers",)
    failure_policy = PARK

    async def setup(self, uow: SqlUnitOfWork) -> None:
        """Create the customers table."""
        await uow.execute(
            f"CREATE TABLE {{customers}} (customer_id {id_column(uow.dialect)} PRIMARY KEY, "
            "name TEXT NOT NULL, email TEXT NOT NULL, registered_at BIGINT NOT NULL, "
            "version BIGINT NOT NULL)"
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        """One insert per registration; a replay finds the row there and changes nothing."""
        rows = [
            (
                str(r.event.customer_id),
                r.event.name,
                r.event.email,
                micros(occurred_at(r)),
                r.version,
            )
            for r in events
            if isinstance(r.event, CustomerRegistered)
        ]
        if rows:
            await uow.executemany(
                "INSERT INTO {customers} (customer_id, name, email, registered_at, version) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (customer_id) DO NOTHING",
                rows,
            )


class SqlCustomerReader:
    """Answers :class:`~orders.application.views.CustomerReader` from the SQL model."""

    def __init__(self, store: SqlReadStore) -> None:
        self._store = store

    async def get_customer(self, customer_id: UUID) -> CustomerView | None:
        """The customer, or ``None`` if there is no such customer (yet)."""
        row = await self._store.fetchone(
            NAME, "SELECT * FROM {customers} WHERE customer_id = ?", str(customer_id)
        )
        if row is None:
            return None
        return CustomerView(
            customer_id=UUID(row["customer_id"]),
            name=row["name"],
            email=row["email"],
            registered_at=from_micros(row["registered_at"]),
        )
