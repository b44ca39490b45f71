"""Resources, chosen per environment in one place (``resources_for``)."""

from __future__ import annotations

from salespipe_assets.resources.catalog import Catalog, DuckDBCatalog
from salespipe_assets.resources.io_manager import LAKE_IO, LakeDataset, lake_io_manager
from salespipe_assets.resources.lake import Lake, LocalLake
from salespipe_assets.resources.query import DuckDBQueryEngine, QueryEngine
from salespipe_assets.resources.spark import SparkRuntime
from salespipe_assets.resources.superset import SupersetBI, superset_resource
from salespipe_assets.resources.warehouse import DuckDBWarehouse, Warehouse
from salespipe_assets.settings import Settings

__all__ = [
    "Catalog", "DuckDBCatalog", "LakeDataset", "Lake", "LocalLake", "QueryEngine", "DuckDBQueryEngine",
    "SparkRuntime", "SupersetBI", "Warehouse", "DuckDBWarehouse", "resources_for",
]


def warehouse_for(settings: Settings) -> Warehouse:
    """The warehouse is chosen apart from the lake: Snowflake works with a local lake too."""
    if settings.warehouse_kind == "snowflake":
        from salespipe_assets.resources.snowflake_warehouse import snowflake_warehouse_from_env

        return snowflake_warehouse_from_env()
    return DuckDBWarehouse(database=settings.warehouse)


def resources_for(settings: Settings) -> dict:
    data = _data_resources(settings)
    return {**data, LAKE_IO: lake_io_manager(data["lake"]), "superset": superset_resource()}


def _data_resources(settings: Settings) -> dict:
    if settings.env == "local":
        return {
            "lake": LocalLake(root=settings.lake),
            "spark": spark_for(settings),
            "query": DuckDBQueryEngine(database=settings.catalog),
            "catalog": DuckDBCatalog(database=settings.catalog),
            "warehouse": warehouse_for(settings),
        }
    from dagster_aws.s3 import S3Resource

    from salespipe_assets.resources.athena import AthenaQueryEngine
    from salespipe_assets.resources.glue import GlueCatalog
    from salespipe_assets.resources.s3_lake import S3Lake
    from salespipe_assets.resources.source_export import source_export_from_env

    return {
        # region, endpoint and credentials: the standard AWS_* environment variables
        "lake": S3Lake(root=settings.lake, s3=S3Resource()),
        "spark": spark_for(settings),
        "query": AthenaQueryEngine(database=settings.glue_database, workgroup=settings.athena_workgroup,
                                   output_location=settings.athena_output),
        "catalog": GlueCatalog(database=settings.glue_database),
        "warehouse": warehouse_for(settings),
        "source_export": source_export_from_env(),
    }


def spark_for(settings: Settings) -> SparkRuntime:
    """local[N]: the Spark Connect server in SALESPIPE_SPARK_REMOTE (or SPARK_REMOTE) when one is given (``salespipe
    dev`` and ``salespipe run`` set it for a server that is up), else Spark in the run's process;
    spark://…: Spark driven from the run's process; "emr": one transient EMR cluster per run."""
    if settings.spark_master == "emr":
        from salespipe_assets.resources.emr import emr_runtime_from_env

        return emr_runtime_from_env()
    from salespipe_assets.spark_server import given_remote

    remote = given_remote()
    if remote and settings.spark_master.startswith("local"):
        return SparkRuntime(master=settings.spark_master, remote=remote)
    return SparkRuntime(master=settings.spark_master)
