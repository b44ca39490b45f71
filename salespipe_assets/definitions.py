"""The code location: every asset, check and job, with the resources of the environment."""

from __future__ import annotations

import dagster as dg

from salespipe_assets.jobs import DAILY_ASSETS, WEEKLY_ASSETS, daily_job, weekly_job
from salespipe_assets.resources import resources_for
from salespipe_assets.sensors import sensors
from salespipe_assets.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    extra = []
    if settings.env == "aws":  # the production raw zone is unloaded from the source Snowflake
        from salespipe_assets.assets.source_export import snowflake_source_export

        extra.append(snowflake_source_export)
    return dg.Definitions(
        assets=[*DAILY_ASSETS, *WEEKLY_ASSETS, *extra],
        jobs=[daily_job, weekly_job],
        sensors=sensors,
        resources=resources_for(settings),
        # One process per run: every Spark asset of a run shares one SparkSession.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
