"""Staging: each landed file of a business day validated by Spark (SPEC §2).

Daily tables become ``staged_sales`` / ``staged_inventory``; the snapshot tables become
the ``store`` / ``product`` / ``calendar`` dimensions. A run covers a range of days (a
single-run backfill): one multi-file step per table stages all its days in one Spark
pass, the five tables concurrently on the run's SparkSession (most of a small file's
cost is Spark's fixed per-job overhead). Each day keeps its own publish, manifest,
rejects, materialization and ``rows_reconcile`` result. Each table is still its own
asset: lineage, checks and subsetting stay per table, and a bad file fails only its own
day - the other days and tables of the range are materialized first, then the step
fails with one line per bad file.
"""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from salespipe_assets.assets.landing import raw_key
from salespipe_assets.assets.ranges import DAILY_POLICY, check_evaluation, check_outputs, materialize
from salespipe_assets.partitions import daily_partitions
from salespipe_assets.resources import Lake, QueryEngine, SparkRuntime
from salespipe_assets.resources.io_manager import LAKE_IO
from salespipe_assets.resources.lake import DayFiles
from spark_steps.contract import CONTRACT, DAILY_TABLES, TABLES

RECONCILE = "rows_reconcile"


def staged_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(f"staged_{table}" if table in DAILY_TABLES else table)


def table_schema(schema: list[dict]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c["name"], c["type"]) for c in schema])


def _description(table: str) -> str:
    if CONTRACT[table].daily:
        return (f"Accepted `{table}` rows of one business day, typed Parquet at "
                f"`staged/{table}/business_date=<day>/`; rejected rows with reason and line at "
                f"`rejects/{table}/`; a bad file moves to `quarantine/`.")
    return (f"The `{table}` dimension: the latest complete snapshot, Parquet at `curated/{table}/` "
            f"(an older day's snapshot is validated but does not replace a newer one).")


def _spec(table: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        staged_key(table),
        group_name="staging" if CONTRACT[table].daily else "dimensions",
        deps=[raw_key(table)],
        description=_description(table),
        kinds={"spark", "parquet"},
        skippable=True,
    ).with_io_manager_key(LAKE_IO)  # the published dataset, checked against its manifest


@dg.multi_asset(
    name="stage_day",
    partitions_def=daily_partitions,
    specs=[_spec(t) for t in TABLES],
    check_specs=[
        dg.AssetCheckSpec(
            RECONCILE, asset=staged_key(t), blocking=True,  # rows lost: the day's catalog/warehouse steps skip
            description="Rows read from the file = rows accepted + rows rejected (counted in the published Parquet).",
        )
        for t in TABLES
    ],
    can_subset=True,
    backfill_policy=DAILY_POLICY,
)
def stage_day(context: dg.AssetExecutionContext, lake: Lake, spark: SparkRuntime, query: QueryEngine):
    landed_days = lake.scan_landing().days  # one listing for the whole range
    tables = [t for t in TABLES if staged_key(t) in context.selected_asset_keys]
    failures = []
    files: dict[str, list[dict]] = {t: [] for t in tables}
    size = 0  # the range's landed bytes: every table's step is told (the first starts a local JVM)
    for partition in context.partition_keys:
        landed = landed_days.get(partition, DayFiles(partition)).files
        missing = [t for t in tables if t not in landed]
        if missing:
            failures.append(f"no landed file for {', '.join(missing)} on {partition}")
        for table in tables:
            if table in landed:
                files[table].append({"source": landed[table].rel, "business_date": partition})
                size += landed[table].size

    # One multi-file step per table (all its days in one Spark read), the tables side by side.
    with ThreadPoolExecutor(max_workers=max(1, len(tables))) as pool:
        futures = {t: pool.submit(_stage_table, context, spark, lake, t, files[t], size) for t in tables if files[t]}
    for table, future in futures.items():
        try:
            outcomes = future.result()
        except dg.Failure as exc:  # the whole step failed (the lake cannot be written, ...)
            failures.append(exc.description)
            continue
        failures += [o["failure"] for o in outcomes if o["failure"]]
        yield from _materializations(context, table, [o["result"] for o in outcomes if not o["failure"]], query)
    yield from check_outputs(context, [dg.AssetCheckKey(staged_key(t), RECONCILE) for t in tables])
    if failures:
        raise dg.Failure(description="\n".join(failures), allow_retries=False)


def _stage_table(context, spark: SparkRuntime, lake: Lake, table: str, files: list[dict],
                 range_bytes: int) -> list[dict]:
    """``[{"result": ..., "failure": None | "<file>: <reason>"}]``, one per file, in order."""
    return spark.run_step(context, "stage_file", input_bytes=range_bytes, lake=lake.root, table=table,
                          files=files)["outcomes"]


def _materializations(context: dg.AssetExecutionContext, table: str, results: list[dict], query: QueryEngine):
    key = staged_key(table)
    yield from materialize(context, key, {r["business_date"]: _metadata(r) for r in results},
                           reports={r["business_date"]: r for r in results})
    counted = iter(query.parquet_rows_of([uri for r in results
                                          for uri in (r["rejects_path"], *([r["output_path"]] if r["published"] else []))]))
    for r in results:
        rejected_stored = next(counted)
        accepted_stored = next(counted) if r["published"] else r["rows_accepted"]
        yield check_evaluation(
            context, key, RECONCILE, r["business_date"],
            passed=r["rows_read"] == accepted_stored + rejected_stored,
            metadata={"rows_read": r["rows_read"], "rows_accepted": accepted_stored,
                      "rows_rejected": rejected_stored})


def _metadata(r: dict) -> dict:
    return {
        "dagster/row_count": r["rows_accepted"],
        "rows_read": r["rows_read"],
        "rows_accepted": r["rows_accepted"],
        "rows_rejected": r["rows_rejected"],
        "rejects_by_reason": dg.MetadataValue.json(r["rejects_by_reason"]),
        **{f"rejected_{reason}": n for reason, n in r["rejects_by_reason"].items()},
        "path": dg.MetadataValue.path(r["output_path"]),
        "rejects_path": dg.MetadataValue.path(r["rejects_path"]),
        "source_file": dg.MetadataValue.json(r["source_file"]),
        "published": r["published"],
        "dagster/column_schema": table_schema(r["schema"]),
    }
