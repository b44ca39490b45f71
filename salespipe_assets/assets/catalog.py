"""Catalog entries: the curated datasets as queryable tables (DuckDB views locally)."""


import dagster as dg
from dagster_duckdb import DuckDBResource

from salespipe_assets.assets.fact import FACT_KEY
from salespipe_assets.assets.staging import staged_key
from salespipe_assets.catalog import FACT_VIEW, refresh_views
from salespipe_assets.partitions import daily_partitions, weekly_partitions
from salespipe_assets.resources import Lake
from salespipe_assets.sql import date_literal, identifier
from spark_steps.contract import DAILY_TABLES, SNAPSHOT_TABLES

CATALOG_FACT_KEY = dg.AssetKey(["catalog", FACT_VIEW])


def catalog_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["catalog", table])


@dg.asset(
    key=CATALOG_FACT_KEY,
    group_name="catalog",
    partitions_def=weekly_partitions,
    deps=[FACT_KEY],
    kinds={"duckdb"},
    description="The fact as a catalog table over its Parquet partitions (DuckDB view locally).",
)
def catalog_weekly_sales_inventory(context: dg.AssetExecutionContext, lake: Lake, catalog: DuckDBResource):
    week = context.partition_key
    with catalog.get_connection() as con:
        visible = refresh_views(con, lake.fs.path(""), only=[FACT_VIEW])
        week_rows = con.execute(
            f"SELECT count(*) FROM {identifier(FACT_VIEW)} WHERE week_start = {date_literal(week)}"
        ).fetchone()[0]
    return dg.MaterializeResult(metadata={
        "table": FACT_VIEW, "rows_in_week": week_rows, "rows_total": visible.get(FACT_VIEW, 0),
    })


@dg.multi_asset(
    name="catalog_daily_tables",
    partitions_def=daily_partitions,
    specs=[
        dg.AssetSpec(catalog_key(t), group_name="catalog", deps=[staged_key(t)], kinds={"duckdb"},
                     description=f"`{t}` as a catalog table.")
        for t in SNAPSHOT_TABLES + DAILY_TABLES
    ],
)
def catalog_daily_tables(context: dg.AssetExecutionContext, lake: Lake, catalog: DuckDBResource):
    """Dimensions, staged tables and their rejects as catalog tables."""
    with catalog.get_connection() as con:
        visible = refresh_views(con, lake.fs.path(""), only=[
            *SNAPSHOT_TABLES, *[f"staged_{t}" for t in DAILY_TABLES],
            *[f"rejects_{t}" for t in SNAPSHOT_TABLES + DAILY_TABLES],
        ])
    for t in SNAPSHOT_TABLES + DAILY_TABLES:
        view = t if t in SNAPSHOT_TABLES else f"staged_{t}"
        yield dg.MaterializeResult(asset_key=catalog_key(t), metadata={
            "table": view, "rows": visible.get(view, 0), "rejects_rows": visible.get(f"rejects_{t}", 0),
        })
