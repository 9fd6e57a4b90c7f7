"""The catalog read model (SQL): each product with its current price and available stock.

Table ``catalog__products_v1``: product_id -> sku, name, price_cents, available_stock
(initial stock + restocks - reserved + released) and version (the product stream's
version). Every change after ``ProductAdded`` applies only to a row whose version is
older than the event, so a replayed event changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from cqrskit.projection import Projection
from cqrskit.readstore import SqlReadStore, SqlUnitOfWork
from cqrskit.store.base import RecordedEvent
from orders.application.views import ProductView
from orders.domain.events import (
    ProductAdded,
    ProductPriceChanged,
    ProductRestocked,
    StockReleased,
    StockReserved,
)
from orders.projections._common import PARK, cents, from_cents, id_column

__all__ = ["CatalogProjection", "SqlCatalogReader"]

NAME = "catalog"


class CatalogProjection(Projection[SqlUnitOfWork]):
    """Builds the ``catalog`` read model; read it with :class:`SqlCatalogReader`."""

    name = NAME
    version = 1
    handles = (ProductAdded, ProductRestocked, ProductPriceChanged, StockReserved, StockReleased)
    tables = ("products",)
    failure_policy = PARK

    async def setup(self, uow: SqlUnitOfWork) -> None:
        """Create the products table."""
        ident = id_column(uow.dialect)
        await uow.execute(
            f"CREATE TABLE {{products}} (product_id {ident} PRIMARY KEY, sku TEXT NOT NULL, "
            "name TEXT NOT NULL, price_cents BIGINT NOT NULL, "
            "available_stock BIGINT NOT NULL, version BIGINT NOT NULL)"
        )

    async def handle(self, events: Sequence[RecordedEvent], uow: SqlUnitOfWork) -> None:
        """Write each event's effect, guarded by the product stream's version."""
        for recorded in events:
            match recorded.event:
                case ProductAdded(
                    product_id=product_id, sku=sku, name=name, price=price, stock=stock
                ):
                    await uow.execute(
                        "INSERT INTO {products} (product_id, sku, name, price_cents, "
                        "available_stock, version) VALUES (?, ?, ?, ?, ?, ?) "
                        "ON CONFLICT (product_id) DO NOTHING",
                        str(product_id),
                        sku,
                        name,
                        cents(price),
                        stock,
                        recorded.version,
                    )
                case ProductPriceChanged(product_id=product_id, price=price):
                    await uow.execute(
                        "UPDATE {products} SET price_cents = ?, version = ? "
                        "WHERE product_id = ? AND version < ?",
                        cents(price),
                        recorded.version,
                        str(product_id),
                        recorded.version,
                    )
                case (
                    ProductRestocked(product_id=product_id, quantity=quantity)
                    | StockReleased(product_id=product_id, quantity=quantity)
                    | StockReserved(product_id=product_id, quantity=quantity)
                ):
                    change = -quantity if isinstance(recorded.event, StockReserved) else quantity
                    await uow.execute(
                        "UPDATE {products} SET available_stock = available_stock + ?, "
                        "version = ? WHERE product_id = ? AND version < ?",
                        change,
                        recorded.version,
                        str(product_id),
                        recorded.version,
                    )


class SqlCatalogReader:
    """Answers :class:`~orders.application.views.CatalogReader` from the SQL model."""

    def __init__(self, store: SqlReadStore) -> None:
        self._store = store

    async def get_product(self, product_id: UUID) -> ProductView | None:
        """The product, or ``None`` if there is no such product (yet)."""
        row = await self._store.fetchone(
            NAME, "SELECT * FROM {products} WHERE product_id = ?", str(product_id)
        )
        if row is None:
            return None
        return ProductView(
            product_id=UUID(row["product_id"]),
            sku=row["sku"],
            name=row["name"],
            price=from_cents(row["price_cents"]),
            available_stock=int(row["available_stock"]),
            version=int(row["version"]),
        )
