"""Daily partitions for landed and staged data, weekly (Sunday-Saturday) for the fact.

Dagster's default time-window mapping turns a week into its seven days, so a newly
landed day recomputes only its own week.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from salespipe_assets.settings import Settings

_settings = Settings.from_env()
_bounds = (
    {"end_date": _settings.partition_end} if _settings.partition_end else {"end_offset": 1}
)

daily_partitions = dg.DailyPartitionsDefinition(start_date=_settings.partition_start, **_bounds)
weekly_partitions = dg.WeeklyPartitionsDefinition(
    start_date=_settings.partition_start, day_offset=0, **_bounds
)


def week_of(day: str) -> str:
    """The Sunday (weekly partition key) of a YYYY-MM-DD day."""
    d = dt.date.fromisoformat(day)
    return (d - dt.timedelta(days=d.isoweekday() % 7)).isoformat()
