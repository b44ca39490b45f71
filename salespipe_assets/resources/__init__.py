"""Resources, chosen per environment in one place (``resources_for``)."""

from __future__ import annotations

from dagster_duckdb import DuckDBResource

from salespipe_assets.resources.lake import Lake, LocalLake
from salespipe_assets.resources.query import DuckDBQueryEngine, QueryEngine
from salespipe_assets.resources.spark import SparkRuntime
from salespipe_assets.settings import Settings

__all__ = ["Lake", "LocalLake", "QueryEngine", "DuckDBQueryEngine", "SparkRuntime", "resources_for"]


def resources_for(settings: Settings) -> dict:
    if settings.env == "local":
        return {
            "lake": LocalLake(root=settings.lake),
            "spark": SparkRuntime(master=settings.spark_master),
            "query": DuckDBQueryEngine(),
            "catalog": DuckDBResource(database=settings.catalog),
            "warehouse": DuckDBResource(database=settings.warehouse),
        }
    raise NotImplementedError(
        "SALESPIPE_ENV=aws needs the S3 lake, EMR, Glue/Athena and Snowflake resources "
        "(issues 3-5); only 'local' is available in this build"
    )
