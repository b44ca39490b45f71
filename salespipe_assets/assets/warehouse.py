"""Warehouse tables (DuckDB locally, Snowflake in AWS), loaded from the lake by the
warehouse itself; the fact one week at a time."""

import dagster as dg

from salespipe_assets.assets.catalog import CATALOG_FACT_KEY, catalog_key
from salespipe_assets.assets.fact import FACT_KEY
from salespipe_assets.assets.staging import staged_key
from salespipe_assets.partitions import daily_partitions, weekly_partitions
from salespipe_assets.resources import Lake, Warehouse
from salespipe_assets.resources.warehouse import FACT_TABLE, fact_partition
from salespipe_assets.retries import SERVICE_RETRY_POLICY
from spark_steps.contract import SNAPSHOT_TABLES

WAREHOUSE_FACT_KEY = dg.AssetKey(["warehouse", FACT_TABLE])


def warehouse_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", table])


@dg.asset(
    key=WAREHOUSE_FACT_KEY,
    group_name="warehouse",
    partitions_def=weekly_partitions,
    deps=[FACT_KEY, CATALOG_FACT_KEY],
    kinds={"sql"},
    description="The fact as a warehouse table, replaced one week at a time.",
    retry_policy=SERVICE_RETRY_POLICY,
    check_specs=[dg.AssetCheckSpec(
        "rows_match_curated", asset=WAREHOUSE_FACT_KEY,
        description="Warehouse rows for the week = rows in the curated Parquet partition.")],
)
def warehouse_weekly_sales_inventory(context: dg.AssetExecutionContext, lake: Lake, warehouse: Warehouse):
    week = context.partition_key
    manifest = lake.read_manifest(fact_partition(week))
    if manifest is None:
        raise dg.Failure(f"week {week} has no published fact partition to load", allow_retries=False)
    loaded = warehouse.load_fact_week(lake, week)
    return dg.MaterializeResult(
        metadata={**loaded, "dagster/row_count": loaded["rows"], "curated_rows": manifest["row_count"]},
        check_results=[dg.AssetCheckResult(
            check_name="rows_match_curated", passed=loaded["rows"] == manifest["row_count"],
            metadata={"warehouse_rows": loaded["rows"], "curated_rows": manifest["row_count"]})],
    )


@dg.multi_asset(
    name="warehouse_dimensions",
    partitions_def=daily_partitions,
    specs=[dg.AssetSpec(warehouse_key(t), group_name="warehouse", deps=[staged_key(t), catalog_key(t)],
                        kinds={"sql"}, description=f"The `{t}` dimension as a warehouse table.",
                        skippable=True)
           for t in SNAPSHOT_TABLES],
    retry_policy=SERVICE_RETRY_POLICY,
)
def warehouse_dimensions(context: dg.AssetExecutionContext, lake: Lake, warehouse: Warehouse):
    """Replace each dimension table with the latest published snapshot."""
    for t in SNAPSHOT_TABLES:
        manifest = lake.read_manifest(f"curated/{t}")
        if manifest is None:
            continue
        loaded = warehouse.replace_dimension(lake, t)
        yield dg.MaterializeResult(asset_key=warehouse_key(t), metadata={
            **loaded, "dagster/row_count": loaded["rows"], "snapshot_date": manifest["business_date"]})
