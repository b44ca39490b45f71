"""Catalog entries: the curated datasets as queryable tables (DuckDB views locally, Glue in AWS)."""

import dagster as dg

from salespipe_assets.assets.fact import FACT_KEY
from salespipe_assets.assets.staging import staged_key
from salespipe_assets.partitions import daily_partitions, weekly_partitions
from salespipe_assets.resources import Catalog, Lake
from salespipe_assets.resources.catalog import DAILY_CATALOG_TABLES, FACT_TABLE
from spark_steps.contract import DAILY_TABLES, SNAPSHOT_TABLES, TABLES

CATALOG_FACT_KEY = dg.AssetKey(["catalog", FACT_TABLE])


def catalog_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["catalog", table])


def _catalog_table(table: str) -> str:
    return table if table in SNAPSHOT_TABLES else f"staged_{table}"


@dg.asset(
    key=CATALOG_FACT_KEY,
    group_name="catalog",
    partitions_def=weekly_partitions,
    deps=[FACT_KEY],
    kinds={"duckdb"},
    description="The fact as a catalog table over its Parquet partitions; each week a partition.",
)
def catalog_weekly_sales_inventory(context: dg.AssetExecutionContext, lake: Lake, catalog: Catalog):
    visible = catalog.register_fact_week(lake, context.partition_key)
    return dg.MaterializeResult(metadata={"table": FACT_TABLE, **visible})


@dg.multi_asset(
    name="catalog_daily_tables",
    partitions_def=daily_partitions,
    specs=[
        dg.AssetSpec(catalog_key(t), group_name="catalog", deps=[staged_key(t)], kinds={"duckdb"},
                     description=f"`{_catalog_table(t)}` (and `rejects_{t}`) as catalog tables.")
        for t in SNAPSHOT_TABLES + DAILY_TABLES
    ],
)
def catalog_daily_tables(context: dg.AssetExecutionContext, lake: Lake, catalog: Catalog):
    """Dimensions, staged tables and their rejects as catalog tables."""
    visible = catalog.register_tables(lake, DAILY_CATALOG_TABLES)
    for t in SNAPSHOT_TABLES + DAILY_TABLES:
        yield dg.MaterializeResult(asset_key=catalog_key(t), metadata={
            "table": _catalog_table(t), "rows": visible.get(_catalog_table(t), 0),
            "rejects_rows": visible.get(f"rejects_{t}", 0),
        })
