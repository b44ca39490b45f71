"""Warehouse tables (DuckDB locally, Snowflake in AWS), loaded from the lake by the
warehouse itself; the fact one week at a time."""

import dagster as dg

from salespipe_assets.assets.catalog import CATALOG_FACT_KEY, catalog_key
from salespipe_assets.assets.fact import FACT_KEY
from salespipe_assets.assets.ranges import DAILY_POLICY, WEEKLY_POLICY, check_evaluation, check_outputs, materialize
from salespipe_assets.assets.staging import staged_key
from salespipe_assets.partitions import daily_partitions, weekly_partitions
from salespipe_assets.resources import Lake, LakeDataset, Warehouse
from salespipe_assets.resources.warehouse import FACT_TABLE
from salespipe_assets.retries import SERVICE_RETRY_POLICY
from spark_steps.contract import SNAPSHOT_TABLES

WAREHOUSE_FACT_KEY = dg.AssetKey(["warehouse", FACT_TABLE])


def warehouse_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["warehouse", table])


@dg.asset(
    key=WAREHOUSE_FACT_KEY,
    group_name="warehouse",
    partitions_def=weekly_partitions,
    deps=[CATALOG_FACT_KEY],
    ins={"weekly_sales_inventory": dg.AssetIn(FACT_KEY)},  # {week: LakeDataset}, from the lake IO manager
    kinds={"sql"},
    description="The fact as a warehouse table, replaced one week at a time.",
    retry_policy=SERVICE_RETRY_POLICY,
    backfill_policy=WEEKLY_POLICY,
    check_specs=[dg.AssetCheckSpec(
        "rows_match_curated", asset=WAREHOUSE_FACT_KEY,
        description="Warehouse rows for the week = rows in the curated Parquet partition.")],
)
def warehouse_weekly_sales_inventory(context: dg.AssetExecutionContext, lake: Lake, warehouse: Warehouse,
                                     weekly_sales_inventory: dict[str, LakeDataset]):
    """Each week of the run replaced in the warehouse, checked against its curated partition.
    A week without a published fact gets no materialization and fails the step after the others."""
    loaded, missing = {}, []
    for week in context.partition_keys:
        if week not in weekly_sales_inventory:
            missing.append(f"week {week} has no published fact partition to load")
            continue
        loaded[week] = (warehouse.load_fact_week(lake, week), weekly_sales_inventory[week].row_count)
    yield from materialize(context, WAREHOUSE_FACT_KEY, {
        week: {**rows, "dagster/row_count": rows["rows"], "curated_rows": curated}
        for week, (rows, curated) in loaded.items()})
    for week, (rows, curated) in loaded.items():
        yield check_evaluation(context, WAREHOUSE_FACT_KEY, "rows_match_curated", week,
                               passed=rows["rows"] == curated,
                               metadata={"warehouse_rows": rows["rows"], "curated_rows": curated})
    yield from check_outputs(context, [dg.AssetCheckKey(WAREHOUSE_FACT_KEY, "rows_match_curated")])
    if missing:
        raise dg.Failure("\n".join(missing), allow_retries=False)


@dg.multi_asset(
    name="warehouse_dimensions",
    partitions_def=daily_partitions,
    specs=[dg.AssetSpec(warehouse_key(t), group_name="warehouse", deps=[staged_key(t), catalog_key(t)],
                        kinds={"sql"}, description=f"The `{t}` dimension as a warehouse table.",
                        skippable=True)
           for t in SNAPSHOT_TABLES],
    ins={t: dg.AssetIn(staged_key(t)) for t in SNAPSHOT_TABLES},  # the published snapshots (LakeDataset)
    retry_policy=SERVICE_RETRY_POLICY,
    backfill_policy=DAILY_POLICY,
)
def warehouse_dimensions(context: dg.AssetExecutionContext, lake: Lake, warehouse: Warehouse,
                         store: LakeDataset, product: LakeDataset, calendar: LakeDataset):
    """Replace each dimension table with the latest published snapshot."""
    for t, snapshot in {"store": store, "product": product, "calendar": calendar}.items():
        loaded = warehouse.replace_dimension(lake, t)
        yield dg.MaterializeResult(asset_key=warehouse_key(t), metadata={
            **loaded, "dagster/row_count": loaded["rows"], "curated_rows": snapshot.row_count,
            "snapshot_date": snapshot.manifest["business_date"]})
