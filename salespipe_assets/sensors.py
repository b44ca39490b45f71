"""Triggers: the landing sensor (replaces CloudWatch + Lambda) and the day-to-week chain.

``landing_sensor`` lists the lake's raw zone (local directory or S3, the same code) and
requests ``daily_job`` for the business days that are complete and whose content has not
been processed: one run for a range of consecutive days (a single-run backfill, at most
the daily assets' ``max_partitions_per_run``), one day being a range of one. A local file
still being written (changed within the quiet period) is not taken yet. The cursor is the
newest last-modified time of a settled file plus the keys seen at that time, so a restart
misses nothing and a key deleted later cannot wedge it. The run key is the content: the
day and its five files' fingerprint (checksums or ETags), or the range and a digest of
every day's; after a failed attempt for that content, also the attempt number, so the
day runs again once its files are back. A re-sent file with new content runs its day
again, an unchanged one never does.

The fact, catalog and warehouse follow by themselves. With the days' run the landing
sensor queues the run of the weeks they touch, after them: every run it queues carries
``WEEK_CHAIN_TAG`` = ``landing`` and ``dagster.yaml`` lets one run per value run at a
time, so the queue starts the weeks the second their days are done rather than at the
next sensor loop. ``week_after_day`` follows every other finished daily run (one
materialized in the UI, launched by the Lambda handler, re-executed) with its weeks'
run, unless a build of the week is waiting or began after the day ended. Run status
sensors rather than eager automation conditions: ``eager()`` only looks at the latest
time window, and a late or backfilled day must still rebuild its own week.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import dagster as dg

from salespipe_assets.jobs import DAILY_ASSETS, WEEKLY_ASSETS, daily_job, weekly_job
from salespipe_assets.partitions import daily_partitions, week_of
from salespipe_assets.resources import Lake
from salespipe_assets.resources.lake import LandedFile, printable
from salespipe_assets.settings import Settings
from salespipe_assets.tracking import (
    DAILY_JOB, LANDING_CHAIN, PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG, TRIGGER_TAG, WEEK_CHAIN_TAG,
    WEEKLY_JOB, content_key, days_done, days_pending, fail_dead_runs, failed_attempts, fingerprint_tags,
    partition_tags, runs_covering,
)

# The daemon looks at its sensors once per loop, every 5 s, and runs a sensor when its
# minimum interval has passed since its last tick. With a minimum of exactly 5 s, a loop
# a few milliseconds early skips it (waits of 8-9 s were measured); 1 s (the default of
# Settings.sensor_interval, SALESPIPE_SENSOR_INTERVAL) means "every loop". Listing the raw
# zone is cheap (one directory or a couple of S3 LIST calls; only new, settled files are
# hashed): raise it only for a very large S3 raw zone.
_SETTINGS = Settings.from_env()
SENSOR_INTERVAL = _SETTINGS.sensor_interval
# The run-status sensors only read the instance's own event log: every loop. This is the
# wait between a day's run ending and its week's run being requested.
FOLLOW_INTERVAL = 1


@dataclass
class LandingCursor:
    """Newest last-modified time seen, plus each file seen at that time with its checksum.

    S3 timestamps have one-second resolution: a file re-sent within the same second as the
    cursor is still new when its checksum differs, so the keys carry their checksums. Only
    settled files move the cursor: a file still being written is new until it is taken.
    """

    modified: float = 0.0
    keys: list[str] = field(default_factory=list)  # "raw/<name>@<checksum>"

    @classmethod
    def load(cls, text: str | None) -> "LandingCursor":
        return cls(**json.loads(text)) if text else cls()

    def dump(self) -> str:
        return json.dumps(asdict(self))

    @staticmethod
    def _seen(f: LandedFile) -> str:
        return f"{f.rel}@{f.fingerprint}"

    def is_new(self, f: LandedFile) -> bool:
        return f.modified > self.modified or (f.modified == self.modified and self._seen(f) not in self.keys)

    def advanced(self, files: list[LandedFile]) -> "LandingCursor":
        if not files:
            return self
        newest = max(f.modified for f in files)
        if newest < self.modified:
            return self
        at_newest = {self._seen(f) for f in files if f.modified == newest}
        if newest == self.modified:
            at_newest |= set(self.keys)
        return LandingCursor(newest, sorted(at_newest))


def per_run(assets: Sequence[dg.AssetsDefinition]) -> int:
    """The most partitions one run of these assets may cover: the smallest
    ``max_partitions_per_run`` of their backfill policies (1 when one has none)."""
    limits = []
    for asset in assets:
        policy = asset.backfill_policy
        if policy is None:
            return 1
        limits.append(policy.max_partitions_per_run or 10_000)  # single_run(): no bound
    return min(limits, default=1)


def contiguous_runs(keys: list[str], step_days: int, most: int) -> list[list[str]]:
    """Sorted partition keys cut into runs of consecutive keys (``step_days`` apart), each
    at most ``most`` long."""
    runs: list[list[str]] = []
    for key in keys:
        last = runs[-1][-1] if runs else None
        if last and len(runs[-1]) < most and (
                dt.date.fromisoformat(key) - dt.date.fromisoformat(last)).days == step_days:
            runs[-1].append(key)
        else:
            runs.append([key])
    return runs


def _request(job: str, keys: list[str], run_key: str, tags: dict[str, str]) -> dg.RunRequest:
    if len(keys) == 1:
        return dg.RunRequest(job_name=job, run_key=run_key, partition_key=keys[0], tags=tags)
    return dg.RunRequest(job_name=job, run_key=run_key, tags={**tags, **partition_tags(keys)})


def _span(keys: list[str]) -> str:
    return keys[0] if len(keys) == 1 else f"{keys[0]}..{keys[-1]}"


def landing_requests(instance: dg.DagsterInstance, todo: dict[str, str], days_per_run: int | None = None,
                     weeks_per_run: int | None = None) -> list[dg.RunRequest]:
    """For days (day -> fingerprint) to process: one daily run per contiguous range (at most
    the daily assets' max_partitions_per_run days), then one weekly run per contiguous range
    of the weeks they touch, all in the landing chain so they start one after another.

    The run key is the content (``content_key``); after a failed attempt for that content it
    also carries the attempt number, so a failed run never uses up a day's content."""
    chain = {TRIGGER_TAG: "sensor", WEEK_CHAIN_TAG: LANDING_CHAIN}
    daily = []
    for days in contiguous_runs(sorted(todo), 1, days_per_run or per_run(DAILY_ASSETS)):
        fingerprints = {d: todo[d] for d in days}
        run_key = content_key(fingerprints)
        if failed := failed_attempts(instance, fingerprints):
            run_key += f":attempt{failed + 1}"
        daily.append(_request(DAILY_JOB, days, run_key, {**fingerprint_tags(fingerprints), **chain}))
    if not daily:
        return []
    after = "+".join(r.run_key for r in daily)
    weeks = sorted({week_of(d) for d in todo})
    return daily + [_request(WEEKLY_JOB, span, f"{_span(span)}:after:{after}", chain)
                    for span in contiguous_runs(weeks, 7, weeks_per_run or per_run(WEEKLY_ASSETS))]


def evaluate_landing(context: dg.SensorEvaluationContext, lake: Lake) -> dg.SensorResult | dg.SkipReason:
    cursor = LandingCursor.load(context.cursor)
    files = lake.list_landed()
    settled = [f for f in files if f.settled]
    new = [f for f in settled if cursor.is_new(f)]
    if not new:
        writing = [printable(f.rel) for f in files if not f.settled]
        return dg.SkipReason(f"waiting for files still being written: {', '.join(writing)}" if writing
                             else "no new files in the raw zone")
    scan = lake.scan_landing(files)
    day_of = {f.rel: day.day for day in scan.days.values() for f in day.files.values()}
    touched: set[str] = set()
    for f in new:
        if f.rel in scan.bad_names:
            target = lake.quarantine(f.rel, scan.bad_names[f.rel])
            context.log.error(f"{printable(f.rel)}: {scan.bad_names[f.rel]} (moved to {target})")
        elif f.rel in day_of:
            touched.add(day_of[f.rel])

    valid_days = set(daily_partitions.get_partition_keys())
    ready: dict[str, str] = {}
    for day in sorted(touched):  # oldest first
        files_of_day = scan.days[day]
        if not files_of_day.complete:
            problems = [f"missing {t}" for t in files_of_day.missing] + files_of_day.problems
            context.log.info(f"business day {day} is incomplete: {'; '.join(problems)}")
        elif day not in valid_days:
            context.log.error(f"business day {day} is outside the partition range")
        else:
            ready[day] = files_of_day.fingerprint
    if ready:
        for run_id in fail_dead_runs(context.instance):
            context.log.warning(f"run {run_id} was STARTED by a process that is gone: marked failed")
    done, pending = days_done(context.instance, ready), days_pending(context.instance, ready)
    for day in sorted(done):
        context.log.info(f"business day {day} with this content was already processed")
    for day in sorted(pending - done):
        context.log.info(f"business day {day} with this content is already queued or running")
    todo = {d: fp for d, fp in ready.items() if d not in done | pending}
    return dg.SensorResult(run_requests=landing_requests(context.instance, todo),
                           cursor=cursor.advanced(settled).dump())


def build_landing_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_sensor",
        jobs=[daily_job, weekly_job],
        minimum_interval_seconds=settings.sensor_interval,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Requests one daily run for the newly completed business days in the lake's raw zone "
                    "(a range of days, when several), and their weeks' run, queued to start after them.",
    )
    def landing_sensor(context: dg.SensorEvaluationContext, lake: Lake):
        return evaluate_landing(context, lake)

    return landing_sensor


landing_sensor = build_landing_sensor(_SETTINGS)


def _covered_days(run: dg.DagsterRun) -> list[str]:
    if day := run.tags.get(PARTITION_TAG):
        return [day]
    start, end = run.tags.get(RANGE_START_TAG), run.tags.get(RANGE_END_TAG)
    if not (start and end):
        return []
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def _week_request(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason | list[dg.RunRequest]:
    """The run for the weeks of a finished daily run (one day or a range): each week that
    has no build waiting and none begun after the run ended."""
    days = _covered_days(context.dagster_run)
    if not days:
        return dg.SkipReason("the finished daily run had no partition")
    day_ended = _end_time(context.instance, context.dagster_run.run_id)
    weeks, skipped = [], []
    for week in sorted({week_of(d) for d in days}):
        if reason := _week_covered(context.instance, week, day_ended):
            skipped.append(reason)
        else:
            weeks.append(week)
    if not weeks:
        return dg.SkipReason("; ".join(skipped))
    requests = [_request(WEEKLY_JOB, span, f"{_span(span)}:{context.dagster_run.run_id}", {TRIGGER_TAG: "sensor"})
                for span in contiguous_runs(weeks, 7, per_run(WEEKLY_ASSETS))]
    return requests[0] if len(requests) == 1 else requests


def _week_covered(instance: dg.DagsterInstance, week: str, day_ended: float | None) -> str | None:
    """Why ``week`` needs no new build after a day that ended at ``day_ended``, if so."""
    for record in runs_covering(instance, WEEKLY_JOB, week, limit=10):
        status = record.dagster_run.status
        if status in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING):
            # queued by the landing sensor with this day, or by an earlier day: it will read
            # this day's data when it starts
            return f"week {week} already has a build waiting"
        if record.start_time and day_ended and record.start_time >= day_ended:
            return f"week {week} was rebuilt after this day's run ended"
    return None


def _week_requests(context: dg.RunStatusSensorContext):
    result = _week_request(context)
    yield from result if isinstance(result, list) else [result]


def _end_time(instance: dg.DagsterInstance, run_id: str) -> float | None:
    record = instance.get_run_record_by_id(run_id)
    return record.end_time if record else None


@dg.run_status_sensor(
    name="week_after_day",
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[daily_job],
    request_job=weekly_job,
    minimum_interval_seconds=FOLLOW_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="After a business day is staged, rebuilds its week: fact, catalog, warehouse.",
)
def week_after_day(context: dg.RunStatusSensorContext):
    yield from _week_requests(context)


@dg.run_failure_sensor(
    name="week_after_failed_day",
    monitored_jobs=[daily_job],
    request_job=weekly_job,
    minimum_interval_seconds=FOLLOW_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A day that failed on one bad file still staged the others: rebuild its week.",
)
def week_after_failed_day(context: dg.RunFailureSensorContext):
    yield from _week_requests(context)


def build_sensors(settings: Settings) -> list[dg.SensorDefinition]:
    """The code location's sensors for ``settings`` (the landing sensor's interval)."""
    return [build_landing_sensor(settings), week_after_day, week_after_failed_day]


sensors = [landing_sensor, week_after_day, week_after_failed_day]
