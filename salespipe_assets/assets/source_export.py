"""The production raw zone's upstream, as an asset: one business day of the five source
tables unloaded from Snowflake into ``raw/`` (the SQL: resources/source_export.py). In the
aws environment the raw assets depend on it and ``source_export_schedule`` runs it daily
for the day before.
"""

import datetime as dt

import dagster as dg

from salespipe_assets.partitions import daily_partitions
from salespipe_assets.resources.lake import Lake
from salespipe_assets.resources.source_export import SnowflakeSourceExport, source_export_from_env
from salespipe_assets.retries import SERVICE_RETRY_POLICY
from salespipe_assets.settings import Settings

SOURCE_EXPORT_KEY = dg.AssetKey("snowflake_source_export")

__all__ = ["SOURCE_EXPORT_KEY", "SnowflakeSourceExport", "snowflake_source_export", "source_export_from_env",
           "source_export_job", "source_export_schedule"]


@dg.asset(
    key=SOURCE_EXPORT_KEY,
    group_name="source",
    partitions_def=daily_partitions,
    kinds={"snowflake", "csv"},
    description=("One business day of sales, inventory, store, product and calendar unloaded from the "
                 "source database into `raw/<table>_<day>.csv.gz` (gzip CSV with header, one file per "
                 "table); re-running a day overwrites the same files."),
    retry_policy=SERVICE_RETRY_POLICY,
)
def snowflake_source_export(context: dg.AssetExecutionContext, lake: Lake,
                            source_export: SnowflakeSourceExport) -> dg.MaterializeResult:
    exported = source_export.export_day(lake, context.partition_key)
    return dg.MaterializeResult(metadata={
        "files": dg.MetadataValue.json({t: e["path"] for t, e in exported.items()}),
        **{f"rows_{t}": e["rows_unloaded"] for t, e in exported.items()},
        "bytes_written": sum(e["output_bytes"] for e in exported.values()),
    })


source_export_job = dg.define_asset_job(
    "source_export_job", selection=dg.AssetSelection.assets(SOURCE_EXPORT_KEY),
    description="Unload one business day from the source Snowflake into raw/ (the landing sensor takes it from there).")


def source_export_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """Every day at ``settings.export_at`` (UTC) the day before is exported: running by default
    in the aws environment, stopped elsewhere."""
    at = dt.time.fromisoformat(settings.export_at)

    @dg.schedule(name="source_export_schedule", job=source_export_job, cron_schedule=f"{at.minute} {at.hour} * * *",
                 execution_timezone="UTC", description="Exports yesterday's five source tables into raw/.",
                 default_status=(dg.DefaultScheduleStatus.RUNNING if settings.env == "aws"
                                 else dg.DefaultScheduleStatus.STOPPED))
    def _schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        # The daily partitions end with today (end_offset=1): the finished day is the one before.
        day = (context.scheduled_execution_time.date() - dt.timedelta(days=1)).isoformat()
        return dg.RunRequest(run_key=day, partition_key=day)

    return _schedule
