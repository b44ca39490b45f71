"""``salespipe backfill``: re-materialize a range of business days whatever ran before
(a fix in the code, a changed rule), then the weeks those days belong to.

Unlike ``salespipe run`` it ignores content fingerprints; it still records them on the
daily runs, so a later ``salespipe run`` counts these days as done.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

from salespipe_assets.partitions import daily_partitions, week_of
from salespipe_assets.resources.lake import Lake
from salespipe_assets.runner import Summary, build_weeks, format_summary, run_days, settled_scan


def days_between(start: dt.date, end: dt.date) -> list[str]:
    if end < start:
        raise ValueError(f"--end {end} is before --start {start}")
    return [(start + dt.timedelta(days=i)).isoformat() for i in range((end - start).days + 1)]


def backfill_lake(defs: dg.Definitions, instance: dg.DagsterInstance, lake: Lake,
                  start: dt.date, end: dt.date, progress: bool = True) -> Summary:
    """Run ``daily_job`` over every complete landed day in [start, end], then ``weekly_job``
    over the weeks those days belong to: one run per range of contiguous days (weeks), at
    most the assets' ``max_partitions_per_run`` each."""
    summary = Summary()
    scan = settled_scan(lake, progress)
    valid_days = set(daily_partitions.get_partition_keys())
    todo = []
    for day in days_between(start, end):
        files = scan.days.get(day)
        if files is None:
            summary.incomplete[day] = ["nothing landed"]
        elif not files.complete:
            summary.incomplete[day] = [f"missing {t}" for t in files.missing] + files.problems
        elif day not in valid_days:
            summary.errors.append(f"business day {day} is outside the partition range; "
                                  "set SALESPIPE_PARTITION_START/END")
        else:
            todo.append(files)
    if not todo and not summary.errors:
        summary.errors.append(f"no complete business day landed between {start} and {end}")

    run_days(defs, instance, {files.day: files.fingerprint for files in todo}, summary, "backfill", progress)

    # A day that failed on one bad file still staged its other files: its week is rebuilt too.
    weeks = sorted({week_of(o.partition) for o in summary.days})
    build_weeks(defs, instance, weeks, summary, trigger="backfill", progress=progress)
    return summary


def format_backfill(summary: Summary, lake_root: str, start: dt.date, end: dt.date) -> str:
    lines = format_summary(summary, lake_root).splitlines()
    lines[0] = f"salespipe backfill {start} .. {end} — lake {lake_root}"
    return "\n".join(lines)
