"""Build and publish weeks of the weekly sales-inventory fact (SPEC §3, §4).

Reads the staged partitions of the weeks' days that exist (one read for every week),
computes the fact in one aggregation and publishes each week on its own as
``curated/weekly_sales_inventory/week_start=<sunday>/``, atomically. Each week's write
also counts its rows, negative rows and totals (``DataFrame.observe``); the distinct keys
and the preview come from the small published file, read back.

    spark-submit spark_steps/build_weekly_fact.py --lake DIR --week-start 2024-01-07
    spark-submit spark_steps/build_weekly_fact.py --lake DIR --week-starts '["2024-01-07", "2024-01-14"]'

One week (``week_start``) returns that week's result and raises ``StepFailed`` when the
week cannot be published; several (``week_starts``) return ``{"outcomes": [...]}``, one
``{"result", "failure"}`` per week in the order asked, and never raise for one bad week.
A week whose decimal sums do not fit decimal(38,2) fails with one line naming the week,
the column and the (store_key, prod_key); its previous partition stays as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid

import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_steps.contract import CONTRACT, checked_date
from spark_steps.fact import NON_NEGATIVE_MEASURES, OVERFLOW, weekly_fact_checked
from spark_steps.lakefs import DATA_FILE, MANIFEST, LakeFS, LakeWriteError
from spark_steps.publish import publish
from spark_steps.runtime import StepFailed, main, observation
from spark_steps.validate import spark_type

FACT_DATASET = "curated/weekly_sales_inventory"
PREVIEW_ROWS = 10
READ_BACK_BATCH_ROWS = 65_536
TOTALS = ["total_sales_qty", "total_sales_amt", "no_stock_instances", "low_stock_instances", "no_stock_impact"]
# The text a week's overflow guard raises inside Spark; found again in the exception's
# message (a classic py4j error and a Spark Connect error both carry it).
_OVERFLOW_TEXT = re.compile(r"(week \d{4}-\d{2}-\d{2}: \w+ of \(store_key -?\d+, prod_key -?\d+\) does not fit decimal\(38,2\))")


def add_arguments(parser) -> None:
    weeks = parser.add_mutually_exclusive_group(required=True)
    weeks.add_argument("--week-start", help="the week's Sunday, YYYY-MM-DD")
    weeks.add_argument("--week-starts", type=json.loads, help='several weeks in one pass: a JSON list of Sundays')
    parser.add_argument("--staged", type=json.loads, default=None,
                        help='the staged days to build from: {"sales": [dir, ...], "inventory": [...]} '
                             '(default: every published day of the weeks)')


def partition_path(week_start: str) -> str:
    return f"{FACT_DATASET}/week_start={checked_date(week_start, 'week_start')}"


def week_days(week_start: str) -> list[str]:
    sunday = dt.date.fromisoformat(week_start)
    if sunday.isoformat() != week_start or sunday.isoweekday() != 7:
        raise ValueError(f"week_start {week_start} is not a Sunday")
    return [(sunday + dt.timedelta(days=i)).isoformat() for i in range(7)]


def _staged_days(fs: LakeFS, table: str, days: list[str], given: list[str] | None = None) -> list[str]:
    """Staged partitions of these days that were published (manifest present), or of the
    ``given`` ones (the datasets the caller's IO manager checked) those of these days."""
    dirs = [f"staged/{table}/business_date={d}" for d in days]
    if given is not None:
        wanted = set(given)
        return [d for d in dirs if d in wanted]
    return [d for d in dirs if fs.exists(f"{d}/{MANIFEST}")]


def run(spark, lake: str, week_start: str | None = None, run_id: str = "",
        week_starts: list[str] | None = None, staged: dict[str, list[str]] | None = None, **_) -> dict:
    if (week_start is None) == (week_starts is None):
        raise ValueError("give week_start or week_starts, not both")
    if week_starts is None:
        week_days(week_start)  # a bad argument is the caller's error (ValueError), not a failed week
        [outcome] = _run_weeks(spark, LakeFS(lake), [week_start], run_id, staged, single=True)
        if outcome["failure"]:
            raise StepFailed(outcome["failure"], outcome["result"])
        return outcome["result"]
    return {"outcomes": _run_weeks(spark, LakeFS(lake), list(week_starts), run_id, staged)}


def _run_weeks(spark, fs: LakeFS, weeks: list[str], run_id: str, staged: dict[str, list[str]] | None = None,
               single: bool = False) -> list[dict]:
    staged = staged or {}
    outcomes: dict[str, dict] = {}
    plans: dict[str, dict] = {}
    for week in dict.fromkeys(weeks):  # a week asked twice is built once
        try:
            days = week_days(week)
        except ValueError as exc:
            outcomes[week] = {"result": {"week_start": week, "run_id": run_id, "published": False},
                              "failure": str(exc)}
            continue
        sales = _staged_days(fs, "sales", days, staged.get("sales"))
        inventory = _staged_days(fs, "inventory", days, staged.get("inventory"))
        result = {"week_start": week, "run_id": run_id, "path": fs.uri(partition_path(week)),
                  "days_with_sales": len(sales), "days_with_inventory": len(inventory)}
        if not sales and not inventory:
            outcomes[week] = {"result": {**result, "row_count": 0, "published": False}, "failure": None}
        else:
            plans[week] = {"result": result, "sales": sales, "inventory": inventory}
    if plans:
        sales = _read(spark, fs, [p for w in plans.values() for p in w["sales"]], "sales")
        inventory = _read(spark, fs, [p for w in plans.values() for p in w["inventory"]], "inventory")
        fact = weekly_fact_checked(sales, inventory).where(
            F.col("week_start").isin([dt.date.fromisoformat(w) for w in plans]))
        if len(plans) > 1:
            fact = fact.cache()  # one aggregation; each week's write filters it
        try:
            for week, plan in plans.items():
                try:
                    outcomes[week] = _publish_week(fact, fs, week, plan, run_id)
                except LakeWriteError as exc:
                    if single:  # one week: the step's usual one-line ERROR
                        raise
                    outcomes[week] = {"result": {**plan["result"], "published": False}, "failure": str(exc)}
        finally:
            if len(plans) > 1:
                fact.unpersist()
    return [outcomes[w] for w in weeks]


def _publish_week(fact, fs: LakeFS, week: str, plan: dict, run_id: str) -> dict:
    result = plan["result"]
    rel = partition_path(week)
    week_fact = fact.where(F.col("week_start") == F.lit(week).cast("date"))
    # A pair whose sum overflowed stops the write before anything is published.
    guard = F.assert_true(F.col(OVERFLOW).isNull(), F.concat(
        F.lit(f"week {week}: "), F.col(OVERFLOW), F.lit(" of (store_key "), F.col("store_key").cast("string"),
        F.lit(", prod_key "), F.col("prod_key").cast("string"), F.lit(") does not fit decimal(38,2)")))
    week_fact = week_fact.where(guard.isNull()).drop(OVERFLOW, "week_start")  # week_start: carried by the path
    negative = F.expr(" OR ".join(f"{c} < 0" for c in NON_NEGATIVE_MEASURES))
    observed = observation(week_fact, f"fact-{week}-{uuid.uuid4().hex[:8]}")
    week_fact = week_fact.observe(
        observed,
        F.count(F.lit(1)).alias("_rows"),
        F.count(F.when(negative, 1)).alias("_negative_rows"),
        # doubles: a sum over many pairs may not fit decimal(38,2) even when every pair does
        *[F.sum(F.col(c).cast("double")).alias(c) for c in TOTALS],
    )
    sources = [
        {"dataset": p, **{k: (fs.read_json(f"{p}/{MANIFEST}") or {}).get(k) for k in ("source_files", "run_id")}}
        for p in plan["sales"] + plan["inventory"]
    ]
    counts: dict = {}

    def manifest_after_write() -> dict:  # the write's observed counts exist only once it is done
        counts.update(_counts(observed.get))
        return {"dataset": FACT_DATASET, "week_start": week, "row_count": counts["row_count"], "run_id": run_id,
                "sources": sources, "totals": counts["totals"]}

    try:
        manifest = publish(week_fact, fs, rel, manifest_after_write, sort_by=["store_key", "prod_key"])
    except LakeWriteError:
        raise
    except Exception as exc:
        found = _OVERFLOW_TEXT.search(str(exc))
        if found is None:
            raise
        return {"result": {**result, "published": False, "error": {"reason": "overflow", "detail": found[1]}},
                "failure": f"{found[1]}: the week is not published (its previous partition is kept)"}
    distinct_keys, preview = _read_back(fs, rel)
    return {"result": {**result, "row_count": counts["row_count"], "distinct_keys": distinct_keys,
                       "rows_with_negative_measure": counts["negative_rows"], "published": True,
                       "schema": manifest["schema"], "preview": preview, "totals": counts["totals"]},
            "failure": None}


def _counts(metrics: dict) -> dict:
    return {"row_count": int(metrics["_rows"]), "negative_rows": int(metrics["_negative_rows"]),
            "totals": {c: float(metrics.get(c) or 0) for c in TOTALS}}


def _read_back(fs: LakeFS, rel: str) -> tuple[int, list[dict]]:
    """Distinct (store_key, prod_key) and the top rows, from the published file (no Spark
    job). Only the key and amount columns are read whole (a scale-1 week is 175,000 rows:
    the whole table and its sorted copy grew the run's process by about 90 MB); the top
    rows' other columns come from a pass over the file in batches."""
    keys, by = ["store_key", "prod_key"], [("total_sales_amt", "descending"), ("store_key", "ascending"),
                                           ("prod_key", "ascending")]
    with fs.fs.open_input_file(fs.path(f"{rel}/{DATA_FILE}")) as f:
        parquet = pq.ParquetFile(f)
        table = parquet.read(columns=[*keys, "total_sales_amt"])
        distinct = table.group_by(keys).aggregate([]).num_rows
        top = pc.sort_indices(table, sort_keys=by).slice(0, PREVIEW_ROWS).to_pylist()
        del table
        rows, offset = {}, 0
        for batch in parquet.iter_batches(batch_size=READ_BACK_BATCH_ROWS):
            wanted = [i for i in top if offset <= i < offset + batch.num_rows]
            if wanted:
                rows.update(zip(wanted, batch.take([i - offset for i in wanted]).to_pylist()))
            if len(rows) == len(top):
                break  # the rest of the file holds none of them
            offset += batch.num_rows
    return distinct, [rows[i] for i in top]


def _read(spark, fs: LakeFS, parts: list[str], table: str):
    schema = T.StructType([T.StructField(c.name, spark_type(c.type)) for c in CONTRACT[table].columns])
    if not parts:
        return spark.createDataFrame([], schema)
    return spark.read.parquet(*[fs.spark_input(p) for p in parts]).select(*schema.fieldNames())


if __name__ == "__main__":
    main(run, add_arguments)
