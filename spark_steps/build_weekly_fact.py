"""Build and publish one week of the weekly sales-inventory fact (SPEC §3, §4).

Reads the staged partitions of the week's seven days that exist, computes the fact and
publishes ``curated/weekly_sales_inventory/week_start=<sunday>/`` atomically.

    spark-submit spark_steps/build_weekly_fact.py --lake DIR --week-start 2024-01-07
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_steps.contract import CONTRACT, checked_date
from spark_steps.fact import NON_NEGATIVE_MEASURES, weekly_fact
from spark_steps.lakefs import MANIFEST, LakeFS
from spark_steps.publish import publish
from spark_steps.runtime import main
from spark_steps.validate import spark_type

FACT_DATASET = "curated/weekly_sales_inventory"
PREVIEW_ROWS = 10


def add_arguments(parser) -> None:
    parser.add_argument("--week-start", required=True, help="the week's Sunday, YYYY-MM-DD")


def partition_path(week_start: str) -> str:
    return f"{FACT_DATASET}/week_start={checked_date(week_start, 'week_start')}"


def week_days(week_start: str) -> list[str]:
    sunday = dt.date.fromisoformat(week_start)
    if sunday.isoformat() != week_start or sunday.isoweekday() != 7:
        raise ValueError(f"week_start {week_start} is not a Sunday")
    return [(sunday + dt.timedelta(days=i)).isoformat() for i in range(7)]


def _staged_days(fs: LakeFS, table: str, days: list[str]) -> list[str]:
    """Staged partitions of these days that were published (manifest present)."""
    return [f"staged/{table}/business_date={d}" for d in days
            if fs.exists(f"staged/{table}/business_date={d}/{MANIFEST}")]


def run(spark, lake: str, week_start: str, run_id: str = "", **_) -> dict:
    fs = LakeFS(lake)
    days = week_days(week_start)
    sales_parts = _staged_days(fs, "sales", days)
    inventory_parts = _staged_days(fs, "inventory", days)
    result = {"week_start": week_start, "run_id": run_id, "path": fs.uri(partition_path(week_start)),
              "days_with_sales": len(sales_parts), "days_with_inventory": len(inventory_parts)}
    if not sales_parts and not inventory_parts:
        return {**result, "row_count": 0, "published": False}

    sales = _read(spark, fs, sales_parts, "sales")
    inventory = _read(spark, fs, inventory_parts, "inventory")
    fact = weekly_fact(sales, inventory).where(F.col("week_start") == F.lit(week_start).cast("date"))
    fact = fact.drop("week_start").cache()  # Hive partition column: carried by the path
    try:
        negative = F.expr(" OR ".join(f"{c} < 0" for c in NON_NEGATIVE_MEASURES))
        stats = fact.agg(  # one job for the checks and the totals
            F.count(F.lit(1)).alias("_rows"),
            F.count_distinct("store_key", "prod_key").alias("_distinct_keys"),
            F.count(F.when(negative, 1)).alias("_negative_rows"),
            F.sum("total_sales_qty").alias("total_sales_qty"),
            F.sum("total_sales_amt").alias("total_sales_amt"),
            F.sum("no_stock_instances").alias("no_stock_instances"),
            F.sum("low_stock_instances").alias("low_stock_instances"),
            F.sum("no_stock_impact").alias("no_stock_impact"),
        ).first().asDict()
        row_count, distinct_keys, negative_rows = (stats.pop(k) for k in ("_rows", "_distinct_keys", "_negative_rows"))
        totals = {k: float(v or 0) for k, v in stats.items()}
        sources = [
            {"dataset": p, **{k: (fs.read_json(f"{p}/{MANIFEST}") or {}).get(k) for k in ("source_files", "run_id")}}
            for p in sales_parts + inventory_parts
        ]
        manifest = publish(
            fact, fs, partition_path(week_start),
            {"dataset": FACT_DATASET, "week_start": week_start, "row_count": row_count,
             "run_id": run_id, "sources": sources, "totals": totals},
            sort_by=["store_key", "prod_key"],
        )
        preview = [r.asDict() for r in fact.orderBy(F.desc("total_sales_amt"), "store_key", "prod_key")
                   .limit(PREVIEW_ROWS).collect()]
    finally:
        fact.unpersist()
    return {**result, "row_count": row_count, "distinct_keys": distinct_keys,
            "rows_with_negative_measure": negative_rows, "published": True, "schema": manifest["schema"],
            "preview": preview, "totals": totals}


def _read(spark, fs: LakeFS, parts: list[str], table: str):
    schema = T.StructType([T.StructField(c.name, spark_type(c.type)) for c in CONTRACT[table].columns])
    if not parts:
        return spark.createDataFrame([], schema)
    return spark.read.parquet(*[fs.spark_input(p) for p in parts]).select(*schema.fieldNames())


if __name__ == "__main__":
    main(run, add_arguments)
