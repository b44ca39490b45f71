"""Resources, chosen per environment in one place (``resources_for``)."""

from __future__ import annotations

from salespipe_assets.resources.catalog import Catalog, DuckDBCatalog
from salespipe_assets.resources.lake import Lake, LocalLake
from salespipe_assets.resources.query import DuckDBQueryEngine, QueryEngine
from salespipe_assets.resources.spark import SparkRuntime
from salespipe_assets.resources.warehouse import DuckDBWarehouse, Warehouse
from salespipe_assets.settings import Settings

__all__ = [
    "Catalog", "DuckDBCatalog", "Lake", "LocalLake", "QueryEngine", "DuckDBQueryEngine",
    "SparkRuntime", "Warehouse", "DuckDBWarehouse", "resources_for",
]


def resources_for(settings: Settings) -> dict:
    if settings.env == "local":
        return {
            "lake": LocalLake(root=settings.lake),
            "spark": SparkRuntime(master=settings.spark_master),
            "query": DuckDBQueryEngine(),
            "catalog": DuckDBCatalog(database=settings.catalog),
            "warehouse": DuckDBWarehouse(database=settings.warehouse),
        }
    raise NotImplementedError(
        "SALESPIPE_ENV=aws needs the S3 lake, EMR, Glue/Athena and Snowflake resources "
        "(issues 3-5); only 'local' is available in this build"
    )
