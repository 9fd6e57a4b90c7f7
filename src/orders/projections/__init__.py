"""The read side of the orders service: one module per read model, each a projection
plus the reader that answers its queries (the protocols in ``orders.application.views``).

- ``order_details``: :class:`OrderDetailsSqlProjection` / :class:`SqlOrderDetailsReader`,
  or in Redis :class:`OrderDetailsRedisProjection` / :class:`RedisOrderDetailsReader`;
- ``order_search``: :class:`OrderSearchProjection` / :class:`SqlOrderSearchReader`;
- ``sales_report``: :class:`SalesReportProjection` / :class:`SqlSalesReportReader`;
- ``catalog``: :class:`CatalogProjection` / :class:`SqlCatalogReader`;
- ``customers``: :class:`CustomerProjection` / :class:`SqlCustomerReader`.

SQL read models run unchanged on SQLite and PostgreSQL read stores.
"""

from orders.projections.catalog import CatalogProjection, SqlCatalogReader
from orders.projections.customers import CustomerProjection, SqlCustomerReader
from orders.projections.order_details_redis import (
    OrderDetailsRedisProjection,
    RedisOrderDetailsReader,
)
from orders.projections.order_details_sql import OrderDetailsSqlProjection, SqlOrderDetailsReader
from orders.projections.order_search import OrderSearchProjection, SqlOrderSearchReader
from orders.projections.sales_report import SalesReportProjection, SqlSalesReportReader

__all__ = [
    "CatalogProjection",
    "CustomerProjection",
    "OrderDetailsRedisProjection",
    "OrderDetailsSqlProjection",
    "OrderSearchProjection",
    "RedisOrderDetailsReader",
    "SalesReportProjection",
    "SqlCatalogReader",
    "SqlCustomerReader",
    "SqlOrderDetailsReader",
    "SqlOrderSearchReader",
    "SqlSalesReportReader",
]
