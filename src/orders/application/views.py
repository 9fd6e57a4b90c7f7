"""What the queries return: read-model views, and the ports the projections implement.

The query handlers depend on these small protocols; the projections package provides
their SQL and Redis implementations, and the composition root picks one.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Final, Generic, Protocol, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
)

from orders.domain.values import Address, OrderStatus, refuse_control_characters

__all__ = [
    "MAX_COUNTED_TOTAL",
    "MAX_PAGE",
    "MAX_PAGE_SIZE",
    "MAX_SEARCH_TEXT",
    "MAX_TOTAL_FILTER",
    "CatalogReader",
    "CustomerReader",
    "CustomerView",
    "LineView",
    "OrderDetailsReader",
    "OrderSearchHit",
    "OrderSearchReader",
    "OrderSummary",
    "OrderView",
    "Page",
    "ProductSales",
    "ProductView",
    "SalesDay",
    "SalesReport",
    "SalesReportReader",
    "SearchAmount",
    "SearchCriteria",
    "SearchMoment",
    "SearchText",
    "SortField",
    "SortOrder",
]

T = TypeVar("T")

MAX_COUNTED_TOTAL: Final = 10_000
"""Where a search stops counting its matches, unless it is filtered by status alone (or
not at all): those totals come exact from counts the read model keeps. Counting every
match of a broad filter costs as much as reading them all."""


class _View(BaseModel):
    model_config = ConfigDict(frozen=True)


class Page(_View, Generic[T]):
    """One page of a longer list."""

    items: list[T]
    total: Annotated[
        int,
        Field(
            description="How many items the whole list holds; when `total_is_exact` is "
            "false, at least this many (a count that stopped there)."
        ),
    ]
    total_is_exact: Annotated[
        bool,
        Field(
            description="Whether `total` (and `total_pages`) is the exact count; false "
            f"when a search matches more than {MAX_COUNTED_TOTAL:,} orders and is "
            "filtered by more than a status."
        ),
    ] = True
    page: int
    page_size: int
    total_pages: int

    @classmethod
    def of(
        cls, items: list[T], total: int, page: int, page_size: int, *, exact: bool = True
    ) -> Page[T]:
        """A page, with ``total_pages`` computed from ``total`` and ``page_size``;
        ``exact=False`` says ``total`` is a lower bound."""
        return cls(
            items=items,
            total=total,
            total_is_exact=exact,
            page=page,
            page_size=page_size,
            total_pages=math.ceil(total / page_size) if total else 0,
        )


class LineView(_View):
    """An order line as shown to clients."""

    product_id: UUID
    sku: str
    name: str
    unit_price: Decimal
    quantity: int
    line_total: Decimal


class OrderView(_View):
    """An order in full, with its customer's name."""

    order_id: UUID
    customer_id: UUID
    customer_name: str
    status: OrderStatus
    lines: list[LineView]
    item_count: int
    total_amount: Decimal
    shipping_address: Address
    tracking_number: str | None
    cancellation_reason: str | None
    placed_at: datetime
    updated_at: datetime
    version: int
    """The order stream's version this view reflects (the ETag)."""


class OrderSummary(_View):
    """An order in a customer's list."""

    order_id: UUID
    status: OrderStatus
    item_count: int
    total_amount: Decimal
    placed_at: datetime


class OrderSearchHit(_View):
    """An order found by search."""

    order_id: UUID
    customer_id: UUID
    customer_name: str
    customer_email: str
    status: OrderStatus
    item_count: int
    total_amount: Decimal
    city: str
    placed_at: datetime


class SortField(StrEnum):
    """What search results may be sorted by (nothing else)."""

    PLACED_AT = "placed_at"
    TOTAL_AMOUNT = "total_amount"
    ITEM_COUNT = "item_count"


class SortOrder(StrEnum):
    """Ascending or descending."""

    ASC = "asc"
    DESC = "desc"


MAX_SEARCH_TEXT: Final = 200
"""The longest search text, in characters."""

MAX_TOTAL_FILTER: Final = Decimal(10**15)
"""Above the largest possible order total (100 lines of 10,000 units at 10^9 each)."""

MAX_PAGE: Final = 1_000_000
MAX_PAGE_SIZE: Final = 100
"""The most items one page of any list holds."""


def _convertible_to_utc(moment: datetime) -> datetime:
    # The read models compare moments in UTC: 0001-01-01T00:00+01:00 has no UTC form.
    try:
        moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("must be a moment that exists in UTC (years 1 to 9999)") from None
    return moment


SearchText = Annotated[
    str, StringConstraints(max_length=MAX_SEARCH_TEXT), AfterValidator(refuse_control_characters)
]
"""Search text: bounded, and without NUL or other control characters."""

SearchAmount = Annotated[Decimal, Field(ge=0, le=MAX_TOTAL_FILTER, allow_inf_nan=False)]
"""A bound on order totals: finite and within range (a bound between two cents is
rounded inwards by the read model, so ``1e-999999999`` filters like ``0.01``)."""


def _written_as_a_date(value: object) -> object:
    # pydantic reads a bare number as seconds since 1970; a client sending 40677 more
    # likely meant something else, and the API documents ISO 8601 text.
    if isinstance(value, int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value.strip()) is not None
    ):
        raise ValueError("expected an ISO 8601 date or date-time, e.g. 2026-12-04T10:00:00Z")
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")

SearchMoment = Annotated[
    datetime, BeforeValidator(_written_as_a_date), AfterValidator(_convertible_to_utc)
]
"""A bound on when orders were placed, written as ISO 8601 text."""


class SearchCriteria(_View):
    """Everything a search may filter and sort by. ``customer_id`` limits the search to
    one customer's orders (a customer searching their own)."""

    text: SearchText | None = None
    status: OrderStatus | None = None
    min_total: SearchAmount | None = None
    max_total: SearchAmount | None = None
    placed_from: SearchMoment | None = None
    placed_to: SearchMoment | None = None
    customer_id: UUID | None = None
    sort_by: SortField = SortField.PLACED_AT
    sort_order: SortOrder = SortOrder.DESC
    page: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 1
    page_size: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE)] = 20


class ProductView(_View):
    """A catalog product with the stock available to new orders."""

    product_id: UUID
    sku: str
    name: str
    price: Decimal
    available_stock: int
    version: int


class CustomerView(_View):
    """A customer's profile."""

    customer_id: UUID
    name: str
    email: str
    registered_at: datetime


class ProductSales(_View):
    """Units and revenue of one product on one day."""

    product_id: UUID
    sku: str
    name: str
    quantity: int
    revenue: Decimal


class SalesDay(_View):
    """One day of sales (UTC): orders placed, shipped and cancelled that day, revenue
    from lines ordered that day (gross) less the totals of orders cancelled that day (net),
    and the products sold most (by units)."""

    day: date
    orders_placed: int
    orders_shipped: int
    orders_cancelled: int
    gross_revenue: Decimal
    net_revenue: Decimal
    top_products: list[ProductSales]


class SalesReport(_View):
    """Sales per day over a range of days (days without activity are left out)."""

    from_day: date
    to_day: date
    days: list[SalesDay]
    gross_revenue: Decimal
    net_revenue: Decimal


class OrderDetailsReader(Protocol):
    """Reads the order-details read model (SQL or Redis)."""

    async def get_order(self, order_id: UUID) -> OrderView | None: ...

    async def customer_orders(
        self, customer_id: UUID, status: OrderStatus | None, page: int, page_size: int
    ) -> Page[OrderSummary]: ...


class OrderSearchReader(Protocol):
    """Reads the order-search read model."""

    async def search(self, criteria: SearchCriteria) -> Page[OrderSearchHit]: ...


class SalesReportReader(Protocol):
    """Reads the sales-report read model."""

    async def sales(self, from_day: date, to_day: date, top: int) -> SalesReport: ...


class CatalogReader(Protocol):
    """Reads the catalog read model."""

    async def get_product(self, product_id: UUID) -> ProductView | None: ...


class CustomerReader(Protocol):
    """Reads the customer-profile read model."""

    async def get_customer(self, customer_id: UUID) -> CustomerView | None: ...
