"""Staging: each landed file of a business day validated by Spark (SPEC §2).

Daily tables become ``staged_sales`` / ``staged_inventory``; the snapshot tables become
the ``store`` / ``product`` / ``calendar`` dimensions. One step stages the day's files
concurrently on the run's SparkSession (most of a small file's cost is Spark's fixed
per-job overhead, so running them side by side keeps both cores busy). Each table is
still its own asset: lineage, checks and subsetting stay per table, and a bad file
fails only its own asset - the others of the day are materialized first.
"""

from concurrent.futures import ThreadPoolExecutor

import dagster as dg

from salespipe_assets.assets.landing import raw_key
from salespipe_assets.partitions import daily_partitions
from salespipe_assets.resources import Lake, QueryEngine, SparkRuntime
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
    )


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
)
def stage_day(context: dg.AssetExecutionContext, lake: Lake, spark: SparkRuntime, query: QueryEngine):
    day = lake.day_files(context.partition_key)
    tables = [t for t in TABLES if staged_key(t) in context.selected_asset_keys]
    missing = [t for t in tables if t not in day.files]
    if missing:
        raise dg.Failure(f"no landed file for {', '.join(missing)} on {day.day}", allow_retries=False)

    def stage(table: str) -> dict:
        return spark.run_step(context, "stage_file", lake=lake.root, table=table,
                              source=day.files[table].rel, business_date=day.day)

    with ThreadPoolExecutor(max_workers=len(tables)) as pool:
        futures = {t: pool.submit(stage, t) for t in tables}
    failures = []
    for table, future in futures.items():
        try:
            result = future.result()
        except dg.Failure as exc:
            failures.append(exc.description)
            continue
        yield from _materialization(table, result, query)
    if failures:
        raise dg.Failure(description="\n".join(failures), allow_retries=False)


def _materialization(table: str, r: dict, query: QueryEngine):
    key = staged_key(table)
    rejected_stored = query.parquet_rows(r["rejects_path"])
    accepted_stored = query.parquet_rows(r["output_path"]) if r["published"] else r["rows_accepted"]
    yield dg.MaterializeResult(
        asset_key=key,
        metadata={
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
        },
    )
    yield dg.AssetCheckResult(
        asset_key=key,
        check_name=RECONCILE,
        passed=r["rows_read"] == accepted_stored + rejected_stored,
        metadata={"rows_read": r["rows_read"], "rows_accepted": accepted_stored,
                  "rows_rejected": rejected_stored},
    )
