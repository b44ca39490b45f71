"""When data is due: Dagster freshness policies on the landed files and the warehouse fact.

A business day's five files are expected by ``Settings.landing_due`` (UTC) and the fact's
week in the warehouse by ``Settings.warehouse_due``. The policy is a daily cron deadline
with a one-day window: at the deadline the asset must have materialized within the day
before it, else Dagster's freshness daemon (part of ``dagster-daemon``, on by default)
marks it FAIL and the UI shows it as overdue until it materializes again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from salespipe_assets.assets.landing import raw_key
from salespipe_assets.assets.warehouse import WAREHOUSE_FACT_KEY
from salespipe_assets.settings import Settings
from spark_steps.contract import TABLES

LANDING_KEYS = frozenset(raw_key(t) for t in TABLES)


def daily_deadline(due: str) -> dg.FreshnessPolicy:
    """Materialized within the 24 hours before ``due`` ("HH:MM", UTC), checked every day."""
    at = dt.time.fromisoformat(due)
    return dg.FreshnessPolicy.cron(deadline_cron=f"{at.minute} {at.hour} * * *",
                                   lower_bound_delta=dt.timedelta(days=1), timezone="UTC")


def freshness_policies(settings: Settings) -> dict[dg.AssetKey, dg.FreshnessPolicy]:
    landing = daily_deadline(settings.landing_due)
    return {**{key: landing for key in LANDING_KEYS}, WAREHOUSE_FACT_KEY: daily_deadline(settings.warehouse_due)}


def with_freshness(assets: Iterable[dg.AssetsDefinition], settings: Settings) -> list[dg.AssetsDefinition]:
    policies = freshness_policies(settings)

    def attach(spec: dg.AssetSpec) -> dg.AssetSpec:
        policy = policies.get(spec.key)
        return spec.replace_attributes(freshness_policy=policy) if policy else spec

    return [a.map_asset_specs(attach) if policies.keys() & set(a.keys) else a for a in assets]
