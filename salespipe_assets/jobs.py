"""The two jobs: a business day (landing to the daily catalog and warehouse tables) and a
week (fact to warehouse). Each run is one Spark application (in-process executor)."""

from __future__ import annotations

import dagster as dg

from salespipe_assets.assets.dashboards import dashboard_weekly_sales_inventory
from salespipe_assets.assets.catalog import catalog_daily_tables, catalog_weekly_sales_inventory
from salespipe_assets.assets.fact import weekly_sales_inventory
from salespipe_assets.assets.landing import raw_landing
from salespipe_assets.assets.staging import stage_day
from salespipe_assets.assets.warehouse import warehouse_dimensions, warehouse_weekly_sales_inventory
from salespipe_assets.settings import Settings

DAILY_ASSETS = [raw_landing, stage_day, catalog_daily_tables, warehouse_dimensions]
WEEKLY_ASSETS = [weekly_sales_inventory, catalog_weekly_sales_inventory, warehouse_weekly_sales_inventory,
                 dashboard_weekly_sales_inventory]
# Run monitoring (dagster.yaml) terminates a run past this: a hung run frees its week's slot.
RUN_TAGS = {"dagster/max_runtime": str(Settings.from_env().max_runtime)}

daily_job = dg.define_asset_job(
    "daily_job",
    selection=dg.AssetSelection.assets(*DAILY_ASSETS),
    description="Register, validate and stage one business day; refresh the dimensions.",
    tags=RUN_TAGS,
)
weekly_job = dg.define_asset_job(
    "weekly_job",
    selection=dg.AssetSelection.assets(*WEEKLY_ASSETS),
    description="Build one week of the fact, register it in the catalog, load the warehouse, refresh the dashboard.",
    tags=RUN_TAGS,
)
