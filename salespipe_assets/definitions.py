"""The code location: every asset, check, job and schedule, with the resources of the environment.

Everything that depends on settings is applied here, from the ``Settings`` given (or the
environment's): the partition bounds, the freshness deadlines, and in the aws environment
the Snowflake source export upstream of the raw files with its daily schedule.
"""

from __future__ import annotations

import dagster as dg

from salespipe_assets.assets.landing import raw_landing
from salespipe_assets.freshness import with_freshness
from salespipe_assets.jobs import DAILY_ASSETS, WEEKLY_ASSETS, daily_job, weekly_job
from salespipe_assets.partitions import Partitions, daily_partitions, partitions_for, weekly_partitions
from salespipe_assets.resources import resources_for
from salespipe_assets.sensors import build_sensors
from salespipe_assets.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    assets = [*DAILY_ASSETS, *WEEKLY_ASSETS]
    jobs = [daily_job, weekly_job]
    schedules = []
    if settings.env == "aws":  # the production raw zone is unloaded from the source Snowflake
        from salespipe_assets.assets.source_export import (
            SOURCE_EXPORT_KEY,
            snowflake_source_export,
            source_export_job,
            source_export_schedule,
        )

        assets = [a.map_asset_specs(lambda spec: spec.merge_attributes(deps=[SOURCE_EXPORT_KEY]))
                  if a is raw_landing else a for a in assets]
        assets.append(snowflake_source_export)
        jobs.append(source_export_job)
        schedules.append(source_export_schedule(settings))
    return dg.Definitions(
        assets=with_partitions(with_freshness(assets, settings), partitions_for(settings)),
        jobs=jobs,
        schedules=schedules,
        sensors=build_sensors(settings),
        resources=resources_for(settings),
        # One process per run: every Spark asset of a run shares one SparkSession.
        executor=dg.in_process_executor,
    )


def with_partitions(assets: list[dg.AssetsDefinition], wanted: Partitions) -> list[dg.AssetsDefinition]:
    """The assets were declared with the environment's partitions; give them ``wanted``'s bounds."""
    swap = {daily_partitions: wanted.daily, weekly_partitions: wanted.weekly}
    if all(old == new for old, new in swap.items()):
        return assets

    def rebound(spec: dg.AssetSpec) -> dg.AssetSpec:
        return spec.replace_attributes(partitions_def=swap.get(spec.partitions_def, spec.partitions_def))

    return [a.map_asset_specs(rebound) for a in assets]


defs = build_definitions()
