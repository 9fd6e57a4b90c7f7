"""The queries of the orders service and their handlers: they read only read models."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field

# From the module, not the package: the package would pull the event store in.
from cqrskit.messages import Query
from orders.application.views import (
    MAX_PAGE,
    MAX_PAGE_SIZE,
    CatalogReader,
    CustomerReader,
    CustomerView,
    OrderDetailsReader,
    OrderSearchHit,
    OrderSearchReader,
    OrderSummary,
    OrderView,
    Page,
    ProductView,
    SalesReport,
    SalesReportReader,
    SearchCriteria,
)
from orders.domain.values import OrderStatus

__all__ = [
    "MAX_PAGE_SIZE",
    "GetCustomer",
    "GetOrder",
    "GetProduct",
    "GetSalesReport",
    "ListCustomerOrders",
    "Readers",
    "SearchOrders",
    "query_handlers",
]

MAX_REPORT_DAYS = 366


class GetOrder(Query[OrderView | None]):
    """One order in full. With ``customer_id``, only if it is that customer's order."""

    order_id: UUID
    customer_id: UUID | None = None


class ListCustomerOrders(Query[Page[OrderSummary]]):
    """A customer's orders, newest first."""

    customer_id: UUID
    status: OrderStatus | None = None
    page: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 1
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = 20


class SearchOrders(Query[Page[OrderSearchHit]]):
    """Orders matching text and filters, sorted and paged."""

    criteria: SearchCriteria


class GetProduct(Query[ProductView | None]):
    """A catalog product with its available stock."""

    product_id: UUID


class GetCustomer(Query[CustomerView | None]):
    """A customer's profile."""

    customer_id: UUID


class GetSalesReport(Query[SalesReport]):
    """Sales per day between two days, inclusive."""

    from_day: date
    to_day: date
    top: Annotated[int, Field(ge=1, le=20)] = 5


@dataclass(frozen=True, slots=True)
class Readers:
    """The read models the query handlers read, picked by the composition root."""

    order_details: OrderDetailsReader
    order_search: OrderSearchReader
    sales_report: SalesReportReader
    catalog: CatalogReader
    customers: CustomerReader


def query_handlers(readers: Readers) -> dict[type[Query[Any]], Callable[[Any], Awaitable[Any]]]:
    """A handler for every query of the service, reading ``readers``, to register on a
    query bus."""

    async def get_order(query: GetOrder) -> OrderView | None:
        order = await readers.order_details.get_order(query.order_id)
        if order is None or (query.customer_id not in (None, order.customer_id)):
            return None
        return order

    async def list_customer_orders(query: ListCustomerOrders) -> Page[OrderSummary]:
        return await readers.order_details.customer_orders(
            query.customer_id, query.status, query.page, query.page_size
        )

    async def search_orders(query: SearchOrders) -> Page[OrderSearchHit]:
        return await readers.order_search.search(query.criteria)

    async def get_product(query: GetProduct) -> ProductView | None:
        return await readers.catalog.get_product(query.product_id)

    async def get_customer(query: GetCustomer) -> CustomerView | None:
        return await readers.customers.get_customer(query.customer_id)

    async def get_sales_report(query: GetSalesReport) -> SalesReport:
        return await readers.sales_report.sales(query.from_day, query.to_day, query.top)

    return {
        GetOrder: get_order,
        ListCustomerOrders: list_customer_orders,
        SearchOrders: search_orders,
        GetProduct: get_product,
        GetCustomer: get_customer,
        GetSalesReport: get_sales_report,
    }
