"""``salespipe run``: materialize every complete, new business day and the weeks it touches.

What has been done is read from the Dagster instance itself: a day is done when a
successful ``daily_job`` run for it carries the same content fingerprint (so a re-sent
file with new content runs its day again and an unchanged lake recomputes nothing); a
week is rebuilt when one of its days ran after the week's last successful build.
"""

from __future__ import annotations

import datetime as dt
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field

import dagster as dg
from tqdm import tqdm

from salespipe_assets.partitions import daily_partitions, week_of, weekly_partitions
from salespipe_assets.resources.lake import Lake, LandingScan, printable
from salespipe_assets.tracking import (
    DAILY_JOB,
    TRIGGER_TAG,
    WEEKLY_JOB,
    days_done,
    fail_dead_runs,
    fingerprint_tags,
    latest_run,
    partition_tags,
    process_tags,
)

# The console gets these run events (all are stored in the instance). `salespipe` without
# --debug sets CRITICAL: a failed step is summed up in its ERROR lines, not a stack trace.
CONSOLE_LOG_LEVEL = "WARNING"


@dataclass
class RunOutcome:
    partition: str
    run_id: str
    ok: bool
    errors: list[str] = field(default_factory=list)
    metadata: dict[str, dict] = field(default_factory=dict)  # asset key -> metadata values
    step_seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class Summary:
    days: list[RunOutcome] = field(default_factory=list)
    weeks: list[RunOutcome] = field(default_factory=list)
    unchanged_days: list[str] = field(default_factory=list)
    incomplete: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors and all(o.ok for o in self.days + self.weeks)

    def all_errors(self) -> list[str]:
        return self.errors + [e for o in self.days + self.weeks for e in o.errors]


def _execute(job: dg.JobDefinition, instance: dg.DagsterInstance, partitions: list[str],
             tags: dict) -> list[RunOutcome]:
    """One run over ``partitions`` (one key, or a contiguous range: a single-run backfill);
    its outcome split into one per partition."""
    # Every event is stored in the instance (and shown in the UI); the console gets warnings only.
    quiet = {"loggers": {"console": {"config": {"log_level": CONSOLE_LOG_LEVEL}}}}
    keys = sorted(partitions)
    result = job.execute_in_process(instance=instance, tags={**tags, **partition_tags(keys)},
                                    run_config=quiet, raise_on_error=False)
    outcome = RunOutcome(partition=keys[0], run_id=result.run_id, ok=result.success)
    by_partition: dict[str, dict[str, dict]] = defaultdict(dict)
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.event_specific_data.materialization
            by_partition[mat.partition or keys[0]][mat.asset_key.to_user_string()] = {
                k: v.value for k, v in mat.metadata.items()}
        elif event.event_type == dg.DagsterEventType.STEP_FAILURE:
            outcome.errors.extend(step_failure_lines(event.event_specific_data, event.step_key, by_partition))
    for stat in instance.get_run_step_stats(result.run_id):
        if stat.start_time and stat.end_time:
            outcome.step_seconds[stat.step_key] = stat.end_time - stat.start_time
    return _per_partition(outcome, keys, by_partition)


def _per_partition(run: RunOutcome, keys: list[str], metadata: dict[str, dict[str, dict]]) -> list[RunOutcome]:
    """A partition failed when an error line names it (a bad file, a week without data);
    an error naming none of them fails them all. The run's step times go to the first."""
    lines = [line for error in run.errors for line in error.splitlines() if line.strip()]
    unattributed = [line for line in lines if not any(key in line for key in keys)]
    outcomes = []
    for i, key in enumerate(keys):
        errors = [line for line in lines if key in line]
        outcomes.append(RunOutcome(partition=key, run_id=run.run_id, ok=run.ok or not (errors or unattributed),
                                   errors=(unattributed if i == 0 else []) + errors,
                                   metadata=metadata.get(key, {}),
                                   step_seconds=run.step_seconds if i == 0 else {}))
    return outcomes


def ranges(keys: list[str], max_per_run: int, step: dt.timedelta) -> list[list[str]]:
    """Sorted keys cut into runs of contiguous keys (``step`` apart), at most ``max_per_run`` each."""
    chunks: list[list[str]] = []
    for key in sorted(keys):
        last = chunks[-1] if chunks else None
        if (last and len(last) < max_per_run
                and dt.date.fromisoformat(last[-1]) + step == dt.date.fromisoformat(key)):
            last.append(key)
        else:
            chunks.append([key])
    return chunks


def max_per_run(defs: dg.Definitions, job_name: str) -> int:
    """The least ``max_partitions_per_run`` of the job's assets (1 without a policy)."""
    job = defs.resolve_job_def(job_name)
    sizes = [defs.resolve_assets_def(key).backfill_policy for key in job.asset_layer.executable_asset_keys]
    return min((p.max_partitions_per_run or 10_000 for p in sizes if p is not None), default=1)


def run_days(defs: dg.Definitions, instance: dg.DagsterInstance, fingerprints: dict[str, str], summary: Summary,
             trigger: str, progress: bool = True) -> None:
    """``daily_job`` over these days (day -> fingerprint): one run per range of contiguous days."""
    daily_job = defs.resolve_job_def(DAILY_JOB)
    with tqdm(total=len(fingerprints), desc="days", unit="day", disable=not progress or not fingerprints) as bar:
        for chunk in ranges(list(fingerprints), max_per_run(defs, DAILY_JOB), dt.timedelta(days=1)):
            tags = {**fingerprint_tags({d: fingerprints[d] for d in chunk}), TRIGGER_TAG: trigger, **process_tags()}
            summary.days += _execute(daily_job, instance, chunk, tags)
            bar.update(len(chunk))


def step_failure_message(data) -> str:
    """One line for a failed step (its lines joined when it failed for several files)."""
    return "; ".join(step_failure_lines(data))


def step_failure_lines(data, step_key: str = "", materialized: dict[str, dict[str, dict]] | None = None) -> list[str]:
    """One line per problem of a failed step, control characters escaped: the asset's own
    description (one line per bad file), else the innermost error's first line, said of
    each landed file the step left unstaged (``materialized``: partition -> asset -> metadata).
    A step that exhausted its retry policy names the error it kept failing with."""
    failure = data.user_failure_data
    if failure and failure.description:
        listed = (failure.metadata or {}).get("errors")
        lines = listed.value if listed is not None and isinstance(listed.value, list) else None
        lines = lines or failure.description.splitlines()
        return [printable(str(line)) for line in lines if str(line).strip()]
    error = data.error
    message = error.message.strip()
    retried = ""
    if message.startswith("Exceeded max_retries") and error.cause is not None:
        retried = f" (still failing after {message.removeprefix('Exceeded max_retries of').strip(' :')} retries)"
    while error.cause is not None:  # Dagster's wrappers name the step; the cause names the problem
        error = error.cause
    lines = [line.strip() for line in error.message.splitlines() if line.strip()]
    if (error.cls_name or "").endswith("AssetCheckFailedError"):  # the failed checks follow on later lines
        lines = [" ".join(lines)]
    first_line = next(iter(lines), error.cls_name or "")
    reason = printable(first_line) + retried
    files = _unstaged_files(step_key, materialized or {})
    return [f"{f}: not staged: {reason}" for f in files] or [reason]


def _unstaged_files(step_key: str, materialized: dict[str, dict[str, dict]]) -> list[str]:
    """The landed files (``raw/...``) whose staged asset a failed ``stage_day`` did not materialize."""
    if step_key != "stage_day":
        return []
    from salespipe_assets.assets.staging import staged_key
    from spark_steps.contract import TABLES

    files = []
    for assets in materialized.values():
        for table in TABLES:
            path = str(assets.get(f"raw_{table}", {}).get("path", ""))
            if path and staged_key(table).to_user_string() not in assets:
                files.append(printable(path[path.rfind("raw/"):] if "raw/" in path else path))
    return files


def settled_scan(lake: Lake, progress: bool) -> LandingScan:
    """The landing zone once its files have settled. ``salespipe run`` is a one-shot command,
    often started right after the files were written (``make run`` generates them first): a
    file that changed within the quiet period is waited for once, until the quiet period
    since its last change is over, and the listing is taken again. A file still changing
    then is reported, its day incomplete."""
    files = lake.list_landed()
    unsettled = [f for f in files if not f.settled]
    if unsettled:
        wait = max(f.modified for f in unsettled) + getattr(lake, "quiet_period", 0.0) - time.time()
        if wait > 0:
            if progress:
                print(f"waiting {wait:.0f} s for {len(unsettled)} file(s) still being written", file=sys.stderr)
            time.sleep(wait + 0.1)
        files = lake.list_landed()
    return lake.scan_landing(files)


def run_lake(defs: dg.Definitions, instance: dg.DagsterInstance, lake: Lake, progress: bool = True) -> Summary:
    summary = Summary()
    fail_dead_runs(instance)  # a `salespipe run` killed earlier leaves its run STARTED: say it failed
    scan = settled_scan(lake, progress)
    for rel, reason in scan.bad_names.items():
        target = lake.quarantine(rel, reason)
        summary.errors.append(f"{rel}: {reason} (moved to {target})")
    for day in scan.incomplete_days:
        summary.incomplete[day.day] = [f"missing {t}" for t in day.missing] + day.problems

    valid_days = set(daily_partitions.get_partition_keys())
    landed = {}
    for day in scan.complete_days:
        if day.day not in valid_days:
            summary.errors.append(f"business day {day.day} is outside the partition range; "
                                  "set SALESPIPE_PARTITION_START/END")
            continue
        landed[day.day] = day.fingerprint
    done = days_done(instance, landed)
    summary.unchanged_days += sorted(done)
    run_days(defs, instance, {d: fp for d, fp in landed.items() if d not in done}, summary, "cli", progress)

    weeks = _weeks_to_build(instance, {week_of(d) for d in [*summary.unchanged_days, *(o.partition for o in summary.days)]})
    build_weeks(defs, instance, weeks, summary, trigger="cli", progress=progress)
    return summary


def build_weeks(defs: dg.Definitions, instance: dg.DagsterInstance, weeks: list[str], summary: Summary,
                trigger: str, progress: bool = True) -> None:
    """Run ``weekly_job`` over these weeks: one run per range of contiguous weeks, oldest
    first, recording one outcome per week in ``summary``."""
    weekly_job = defs.resolve_job_def(WEEKLY_JOB)
    valid_weeks = set(weekly_partitions.get_partition_keys())
    for week in weeks:
        if week not in valid_weeks:
            summary.errors.append(f"week {week} is outside the partition range")
    todo = [w for w in weeks if w in valid_weeks]
    with tqdm(total=len(todo), desc="weeks", unit="week", disable=not progress or not todo) as bar:
        for chunk in ranges(todo, max_per_run(defs, WEEKLY_JOB), dt.timedelta(days=7)):
            summary.weeks += _execute(weekly_job, instance, chunk, {TRIGGER_TAG: trigger, **process_tags()})
            bar.update(len(chunk))


def _weeks_to_build(instance: dg.DagsterInstance, weeks: set[str]) -> list[str]:
    """Weeks with a day that ran (successfully or not) after the week's last good build."""
    out = []
    for week in sorted(weeks):
        built = latest_run(instance, WEEKLY_JOB, week, [dg.DagsterRunStatus.SUCCESS])
        built_at = built.end_time if built else None
        sunday = dt.date.fromisoformat(week)
        for i in range(7):
            day_run = latest_run(instance, DAILY_JOB, (sunday + dt.timedelta(days=i)).isoformat())
            if day_run and day_run.end_time and (built_at is None or day_run.end_time > built_at):
                out.append(week)
                break
    return out


def format_summary(summary: Summary, lake_root: str) -> str:
    lines = [f"salespipe run — lake {lake_root}"]
    ok_days = [o for o in summary.days if o.ok]
    lines.append(
        f"  days processed: {len(summary.days)} ({len(ok_days)} ok, {len(summary.days) - len(ok_days)} failed); "
        f"unchanged: {len(summary.unchanged_days)}; incomplete: {len(summary.incomplete)}"
    )
    for day, problems in sorted(summary.incomplete.items()):
        lines.append(f"    incomplete {day}: {'; '.join(problems)}")
    accepted: dict[str, int] = defaultdict(int)
    rejected: dict[str, int] = defaultdict(int)
    for o in summary.days:
        for key, meta in o.metadata.items():
            if "rows_accepted" in meta:
                accepted[key] += meta["rows_accepted"]
                rejected[key] += meta["rows_rejected"]
    if accepted:
        lines.append("  rows accepted / rejected:")
        for key in sorted(accepted):
            lines.append(f"    {key:<18} {accepted[key]:>12,} / {rejected[key]:,}")
    ok_weeks = [o for o in summary.weeks if o.ok]
    lines.append(f"  weeks built: {len(summary.weeks)} ({len(ok_weeks)} ok)")
    for o in summary.weeks:
        rows = o.metadata.get("weekly_sales_inventory", {}).get("dagster/row_count")
        loaded = o.metadata.get("warehouse/weekly_sales_inventory", {}).get("dagster/row_count")
        lines.append(f"    week {o.partition}: fact rows {rows if rows is not None else '-'}, "
                     f"warehouse rows {loaded if loaded is not None else '-'}")
    seconds: dict[str, float] = defaultdict(float)
    for o in summary.days + summary.weeks:
        for step, s in o.step_seconds.items():
            seconds[step] += s
    if seconds:
        lines.append("  time per asset (all runs):")
        for step, s in sorted(seconds.items(), key=lambda kv: -kv[1]):
            lines.append(f"    {step:<36} {s:8.1f} s")
    return "\n".join(lines)
