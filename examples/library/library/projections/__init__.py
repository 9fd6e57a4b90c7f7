"""The library's read models: ``loans`` in SQL, ``catalog`` in SQL or in Redis."""

from library.projections.catalog_redis import CatalogRedisProjection, RedisCatalogReader
from library.projections.catalog_sql import CatalogSqlProjection, SqlCatalogReader
from library.projections.loans import LoansProjection, SqlLoanReader

__all__ = [
    "CatalogRedisProjection",
    "CatalogSqlProjection",
    "LoansProjection",
    "RedisCatalogReader",
    "SqlCatalogReader",
    "SqlLoanReader",
]
