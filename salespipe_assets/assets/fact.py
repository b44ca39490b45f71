"""The weekly sales-inventory fact (SPEC §3), one weekly partition per Sunday."""


import dagster as dg

from salespipe_assets.assets.staging import staged_key, table_schema
from salespipe_assets.partitions import weekly_partitions
from salespipe_assets.resources import Lake, QueryEngine, SparkRuntime
from salespipe_assets.sql import literal
from spark_steps.fact import NON_NEGATIVE_MEASURES

FACT_KEY = dg.AssetKey("weekly_sales_inventory")


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "_no rows_"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


@dg.asset(
    key=FACT_KEY,
    group_name="sales_inventory",
    partitions_def=weekly_partitions,
    deps=[staged_key("sales"), staged_key("inventory")],
    kinds={"spark", "parquet"},
    description=(
        "One row per (week_start, store_key, prod_key) with the 13 metrics of SPEC §3, "
        "Parquet at `curated/weekly_sales_inventory/week_start=<sunday>/`, published atomically "
        "with a manifest and a success marker."
    ),
    check_specs=[
        dg.AssetCheckSpec("unique_keys", asset=FACT_KEY,
                          description="(store_key, prod_key) appears once in the week."),
        dg.AssetCheckSpec("non_negative_measures", asset=FACT_KEY,
                          description="Quantities, amounts, stock and counts are never negative."),
    ],
)
def weekly_sales_inventory(context: dg.AssetExecutionContext, lake: Lake, spark: SparkRuntime,
                           query: QueryEngine):
    r = spark.run_step(context, "build_weekly_fact", lake=lake.root, week_start=context.partition_key)
    if not r["published"]:
        raise dg.Failure(f"week {context.partition_key} has no staged sales or inventory to build from",
                         allow_retries=False)
    files = literal(r["path"].removeprefix("file://") + "/*.parquet")
    total, distinct = query.fetch(
        f"SELECT count(*), count(DISTINCT (store_key, prod_key)) FROM read_parquet({files})")[0]
    negatives = query.fetch(
        f"SELECT count(*) FROM read_parquet({files}) WHERE "
        + " OR ".join(f"{c} < 0" for c in NON_NEGATIVE_MEASURES))[0][0]
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": r["row_count"],
            "path": dg.MetadataValue.path(r["path"]),
            "days_with_sales": r["days_with_sales"],
            "days_with_inventory": r["days_with_inventory"],
            "dagster/column_schema": table_schema(r["schema"]),
            "week_totals": dg.MetadataValue.json({k: float(v or 0) for k, v in r["totals"].items()}),
            "preview": dg.MetadataValue.md(_markdown_table(r["preview"])),
        },
        check_results=[
            dg.AssetCheckResult(check_name="unique_keys", passed=total == distinct,
                                metadata={"rows": total, "distinct_keys": distinct}),
            dg.AssetCheckResult(check_name="non_negative_measures", passed=negatives == 0,
                                metadata={"rows_with_negative_measure": negatives}),
        ],
    )
