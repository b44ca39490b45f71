"""Daily partitions for landed and staged data, weekly (Sunday-Saturday) for the fact.

Dagster's default time-window mapping turns a week into its seven days, so a newly
landed day recomputes only its own week.

The bounds come from ``Settings`` (``partition_start`` / ``partition_end``):
``partitions_for(settings)`` builds both definitions, and ``build_definitions(settings)``
puts them on every asset. The module-level pair below is the code location's default
(settings from the environment), which the asset decorators need when they are imported.
"""

from __future__ import annotations

import datetime as dt
from typing import NamedTuple

import dagster as dg

from salespipe_assets.settings import Settings


class Partitions(NamedTuple):
    daily: dg.DailyPartitionsDefinition
    weekly: dg.WeeklyPartitionsDefinition


def partitions_for(settings: Settings) -> Partitions:
    bounds = {"end_date": settings.partition_end} if settings.partition_end else {"end_offset": 1}
    return Partitions(
        daily=dg.DailyPartitionsDefinition(start_date=settings.partition_start, **bounds),
        weekly=dg.WeeklyPartitionsDefinition(start_date=settings.partition_start, day_offset=0, **bounds),
    )


daily_partitions, weekly_partitions = partitions_for(Settings.from_env())


def week_of(day: str) -> str:
    """The Sunday (weekly partition key) of a YYYY-MM-DD day."""
    d = dt.date.fromisoformat(day)
    return (d - dt.timedelta(days=d.isoweekday() % 7)).isoformat()
