"""Catalog entries: the curated datasets as queryable tables (DuckDB views locally, Glue in AWS)."""

import dagster as dg

from salespipe_assets.assets.fact import FACT_KEY
from salespipe_assets.assets.ranges import DAILY_POLICY, WEEKLY_POLICY, check_evaluation, check_outputs, materialize
from salespipe_assets.assets.staging import staged_key
from salespipe_assets.partitions import daily_partitions, weekly_partitions
from salespipe_assets.resources import Catalog, Lake, LakeDataset, QueryEngine
from salespipe_assets.resources.catalog import DAILY_CATALOG_TABLES, FACT_TABLE
from salespipe_assets.retries import SERVICE_RETRY_POLICY
from salespipe_assets.sql import date_literal, identifier
from spark_steps.contract import DAILY_TABLES, SNAPSHOT_TABLES
from spark_steps.fact import NON_NEGATIVE_MEASURES

CATALOG_FACT_KEY = dg.AssetKey(["catalog", FACT_TABLE])


def catalog_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["catalog", table])


def _catalog_table(table: str) -> str:
    return table if table in SNAPSHOT_TABLES else f"staged_{table}"


@dg.asset(
    key=CATALOG_FACT_KEY,
    group_name="catalog",
    partitions_def=weekly_partitions,
    ins={"weekly_sales_inventory": dg.AssetIn(FACT_KEY)},  # {week: LakeDataset}, from the lake IO manager
    kinds={"sql"},
    description="The fact as a catalog table over its Parquet partitions; each week a partition.",
    retry_policy=SERVICE_RETRY_POLICY,
    backfill_policy=WEEKLY_POLICY,
    check_specs=[
        dg.AssetCheckSpec("unique_keys", asset=CATALOG_FACT_KEY,
                          description="(store_key, prod_key) appears once in the week, read through the query engine."),
        dg.AssetCheckSpec("non_negative_measures", asset=CATALOG_FACT_KEY,
                          description="Quantities, amounts, stock and counts are never negative."),
    ],
)
def catalog_weekly_sales_inventory(context: dg.AssetExecutionContext, lake: Lake, catalog: Catalog,
                                   query: QueryEngine, weekly_sales_inventory: dict[str, LakeDataset]):
    """Registers each published week of the run, then checks it through the environment's
    query engine (DuckDB locally, Athena in AWS) with SQL both accept: one check definition.
    A week without a published fact partition gets no materialization and fails the step
    after the others."""
    results = {week: _register_and_check(lake, catalog, query, week) for week in context.partition_keys
               if week in weekly_sales_inventory}
    yield from materialize(context, CATALOG_FACT_KEY, {
        week: {**visible, "path": dg.MetadataValue.path(weekly_sales_inventory[week].uri),
               "curated_rows": weekly_sales_inventory[week].row_count}
        for week, (visible, _) in results.items()})
    for week, (_, (rows, keys, negatives)) in results.items():
        yield check_evaluation(context, CATALOG_FACT_KEY, "unique_keys", week, passed=rows == keys,
                               metadata={"rows": rows, "distinct_keys": keys})
        yield check_evaluation(context, CATALOG_FACT_KEY, "non_negative_measures", week, passed=negatives == 0,
                               metadata={"rows_with_negative_measure": negatives})
    yield from check_outputs(context, [dg.AssetCheckKey(CATALOG_FACT_KEY, n)
                                       for n in ("unique_keys", "non_negative_measures")])
    missing = [w for w in context.partition_keys if w not in weekly_sales_inventory]
    if missing:
        raise dg.Failure("\n".join(f"week {w} has no published fact partition to register" for w in missing),
                         allow_retries=False)


def _register_and_check(lake: Lake, catalog: Catalog, query: QueryEngine, partition: str) -> tuple[dict, tuple]:
    week = date_literal(partition)
    visible = catalog.register_fact_week(lake, partition)
    table = identifier(FACT_TABLE)
    # SQL below: identifier() names and the date_literal() week only.
    [(rows, keys)] = query.fetch(
        f"SELECT (SELECT count(*) FROM {table} WHERE week_start = {week}), "  # nosec B608  # identifier/date_literal
        f"(SELECT count(*) FROM (SELECT DISTINCT store_key, prod_key FROM {table} WHERE week_start = {week}) k)")
    [(negatives,)] = query.fetch(
        f"SELECT count(*) FROM {table} WHERE week_start = {week} AND ("  # nosec B608  # identifier/date_literal
        + " OR ".join(f"{identifier(c)} < 0" for c in NON_NEGATIVE_MEASURES) + ")")
    return {"table": FACT_TABLE, **visible}, (rows, keys, negatives)


@dg.multi_asset(
    name="catalog_daily_tables",
    partitions_def=daily_partitions,
    specs=[
        dg.AssetSpec(catalog_key(t), group_name="catalog", deps=[staged_key(t)], kinds={"sql"},
                     description=f"`{_catalog_table(t)}` (and `rejects_{t}`) as catalog tables.")
        for t in SNAPSHOT_TABLES + DAILY_TABLES
    ],
    retry_policy=SERVICE_RETRY_POLICY,
    backfill_policy=DAILY_POLICY,
)
def catalog_daily_tables(context: dg.AssetExecutionContext, lake: Lake, catalog: Catalog):
    """Dimensions, staged tables and their rejects as catalog tables (registered once for
    every day of the run: the tables span all days)."""
    visible = catalog.register_tables(lake, DAILY_CATALOG_TABLES)
    for t in SNAPSHOT_TABLES + DAILY_TABLES:
        yield dg.MaterializeResult(asset_key=catalog_key(t), metadata={
            "table": _catalog_table(t), "rows": visible.get(_catalog_table(t), 0),
            "rejects_rows": visible.get(f"rejects_{t}", 0),
        })
