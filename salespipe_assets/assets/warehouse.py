"""Warehouse tables (DuckDB locally): loaded by the warehouse reading the lake's Parquet.

The fact is replaced one week at a time inside a transaction, so a reload never
duplicates rows and a failed load leaves the previous week in place.
"""


import dagster as dg
from dagster_duckdb import DuckDBResource

from salespipe_assets.assets.catalog import CATALOG_FACT_KEY, catalog_key
from salespipe_assets.assets.fact import FACT_KEY
from salespipe_assets.assets.staging import staged_key
from salespipe_assets.partitions import daily_partitions, weekly_partitions
from salespipe_assets.resources import Lake
from salespipe_assets.sql import date_literal, identifier, literal
from spark_steps.contract import CONTRACT, SNAPSHOT_TABLES
from spark_steps.fact import FACT_SCHEMA

FACT_TABLE = "weekly_sales_inventory"
WAREHOUSE_FACT_KEY = dg.AssetKey(["warehouse", FACT_TABLE])


def warehouse_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", table])


def fact_ddl() -> str:
    cols = ", ".join(f"{identifier(n)} {t}" for n, t in FACT_SCHEMA)
    return f"CREATE TABLE IF NOT EXISTS {identifier(FACT_TABLE)} ({cols})"


def load_fact_week(con, parquet_glob: str, week: str) -> int:
    """Replace one week of the fact from its Parquet partition; rows now in the week."""
    columns = ", ".join(identifier(n) for n, _ in FACT_SCHEMA if n != "week_start")
    con.execute(fact_ddl())
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {identifier(FACT_TABLE)} WHERE week_start = {date_literal(week)}")
        con.execute(
            f"INSERT INTO {identifier(FACT_TABLE)} SELECT {date_literal(week)} AS week_start, {columns} "
            f"FROM read_parquet({literal(parquet_glob)})"
        )
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return con.execute(
        f"SELECT count(*) FROM {identifier(FACT_TABLE)} WHERE week_start = {date_literal(week)}"
    ).fetchone()[0]


@dg.asset(
    key=WAREHOUSE_FACT_KEY,
    group_name="warehouse",
    partitions_def=weekly_partitions,
    deps=[FACT_KEY, CATALOG_FACT_KEY],
    kinds={"duckdb"},
    description="The fact as a warehouse table, replaced one week at a time.",
    check_specs=[dg.AssetCheckSpec(
        "rows_match_curated", asset=WAREHOUSE_FACT_KEY,
        description="Warehouse rows for the week = rows in the curated Parquet partition.")],
)
def warehouse_weekly_sales_inventory(context: dg.AssetExecutionContext, lake: Lake, warehouse: DuckDBResource):
    week = context.partition_key
    partition = f"curated/weekly_sales_inventory/week_start={week}"
    manifest = lake.read_manifest(partition)
    if manifest is None:
        raise dg.Failure(f"week {week} has no published fact partition to load", allow_retries=False)
    with warehouse.get_connection() as con:
        loaded = load_fact_week(con, lake.fs.path(partition) + "/*.parquet", week)
    return dg.MaterializeResult(
        metadata={"table": FACT_TABLE, "dagster/row_count": loaded, "curated_rows": manifest["row_count"]},
        check_results=[dg.AssetCheckResult(
            check_name="rows_match_curated", passed=loaded == manifest["row_count"],
            metadata={"warehouse_rows": loaded, "curated_rows": manifest["row_count"]})],
    )


@dg.multi_asset(
    name="warehouse_dimensions",
    partitions_def=daily_partitions,
    specs=[dg.AssetSpec(warehouse_key(t), group_name="warehouse", deps=[staged_key(t), catalog_key(t)],
                        kinds={"duckdb"}, description=f"The `{t}` dimension as a warehouse table.")
           for t in SNAPSHOT_TABLES],
)
def warehouse_dimensions(context: dg.AssetExecutionContext, lake: Lake, warehouse: DuckDBResource):
    """Replace each dimension table with the latest published snapshot."""
    with warehouse.get_connection() as con:
        for t in SNAPSHOT_TABLES:
            manifest = lake.read_manifest(f"curated/{t}")
            if manifest is None:
                continue
            columns = ", ".join(identifier(c) for c in CONTRACT[t].column_names)
            con.execute(
                f"CREATE OR REPLACE TABLE {identifier(t)} AS SELECT {columns} "
                f"FROM read_parquet({literal(lake.fs.path(f'curated/{t}') + '/*.parquet')})"
            )
            rows = con.execute(f"SELECT count(*) FROM {identifier(t)}").fetchone()[0]
            yield dg.MaterializeResult(asset_key=warehouse_key(t), metadata={
                "table": t, "dagster/row_count": rows, "snapshot_date": manifest["business_date"]})
