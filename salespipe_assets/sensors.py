"""Triggers: the landing sensor (replaces CloudWatch + Lambda) and the day-to-week chain.

``landing_sensor`` lists the lake's raw zone (local directory or S3, the same code), and
requests ``daily_job`` for every business day that is complete and whose content has not
been processed. Its cursor is the newest last-modified time seen plus the keys seen at
that time, so a restart misses nothing and a key deleted later cannot wedge it. The run
key is the day plus the fingerprint of its five files (checksums or ETags): a re-sent
file with new content runs its day again, an unchanged one never does.

The fact, catalog and warehouse follow by themselves. With the day's run the landing
sensor queues its week's run (one per week per tick, after the week's last day): both
carry the week in ``WEEK_CHAIN_TAG``, and ``dagster.yaml`` lets one run per week value
run at a time, so the queue starts the week the second its days are done rather than at
the next sensor loop. ``week_after_day`` follows every other finished day (one
materialized in the UI, launched by the Lambda handler, re-executed) with the week's
run, unless a build of the week is waiting or began after the day ended. Run status
sensors rather than eager automation conditions: ``eager()`` only looks at the latest
time window, and a late or backfilled day must still rebuild its own week.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import dagster as dg

from salespipe_assets.jobs import daily_job, weekly_job
from salespipe_assets.partitions import daily_partitions, week_of
from salespipe_assets.resources import Lake
from salespipe_assets.resources.lake import LandedFile
from salespipe_assets.tracking import (
    DAILY_JOB, FINGERPRINT_TAG, PARTITION_TAG, TRIGGER_TAG, WEEK_CHAIN_TAG, WEEKLY_JOB, day_done, day_pending,
)

# The daemon looks at its sensors once per loop, every 5 s, and runs a sensor when its
# minimum interval has passed since its last tick. With a minimum of exactly 5 s, a loop
# a few milliseconds early skips it (waits of 8-9 s were measured); 1 s means "every
# loop". Listing
# the raw zone is cheap (one directory or a couple of S3 LIST calls; only new files are
# hashed): raise SALESPIPE_SENSOR_INTERVAL only for a very large S3 raw zone.
SENSOR_INTERVAL = int(os.environ.get("SALESPIPE_SENSOR_INTERVAL", "1"))
# The run-status sensors only read the instance's own event log: every loop. This is the
# wait between a day's run ending and its week's run being requested.
FOLLOW_INTERVAL = 1


@dataclass
class LandingCursor:
    """Newest last-modified time seen, plus each file seen at that time with its checksum.

    S3 timestamps have one-second resolution: a file re-sent within the same second as the
    cursor is still new when its checksum differs, so the keys carry their checksums.
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


@dg.sensor(
    name="landing_sensor",
    jobs=[daily_job, weekly_job],
    minimum_interval_seconds=SENSOR_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests the daily run for each newly completed business day in the lake's raw zone, "
                "and its week's run, queued to start when the week's days are done.",
)
def landing_sensor(context: dg.SensorEvaluationContext, lake: Lake):
    cursor = LandingCursor.load(context.cursor)
    files = lake.list_landed()
    new = [f for f in files if cursor.is_new(f)]
    if not new:
        return dg.SkipReason("no new files in the raw zone")
    scan = lake.scan_landing(files)
    touched: set[str] = set()
    for f in new:
        if f.rel in scan.bad_names:
            target = lake.quarantine(f.rel, scan.bad_names[f.rel])
            context.log.error(f"{f.rel}: {scan.bad_names[f.rel]} (moved to {target})")
        else:
            touched.add(f.rel.rsplit("_", 1)[-1].split(".", 1)[0])

    valid_days = set(daily_partitions.get_partition_keys())
    days: list[dg.RunRequest] = []
    for day in sorted(touched):  # oldest first
        files_of_day = scan.days[day]
        if not files_of_day.complete:
            problems = [f"missing {t}" for t in files_of_day.missing] + files_of_day.problems
            context.log.info(f"business day {day} is incomplete: {'; '.join(problems)}")
        elif day not in valid_days:
            context.log.error(f"business day {day} is outside the partition range")
        elif day_done(context.instance, day, files_of_day.fingerprint) or day_pending(
                context.instance, day, files_of_day.fingerprint):
            context.log.info(f"business day {day} with this content was already processed")
        else:
            days.append(dg.RunRequest(
                job_name=DAILY_JOB,
                run_key=f"{day}:{files_of_day.fingerprint}",
                partition_key=day,
                tags={FINGERPRINT_TAG: files_of_day.fingerprint, TRIGGER_TAG: "sensor", WEEK_CHAIN_TAG: week_of(day)},
            ))
    return dg.SensorResult(run_requests=_with_weeks(days), cursor=cursor.advanced(files).dump())


def _with_weeks(days: list[dg.RunRequest]) -> list[dg.RunRequest]:
    """The days' requests (oldest first, so a week's days are adjacent), each week's run
    right after its last day."""
    requests = []
    for i, day in enumerate(days):
        requests.append(day)
        week = day.tags[WEEK_CHAIN_TAG]
        if i + 1 == len(days) or days[i + 1].tags[WEEK_CHAIN_TAG] != week:
            requests.append(dg.RunRequest(
                job_name=WEEKLY_JOB,
                run_key=f"{week}:after:{day.run_key}",
                partition_key=week,
                tags={TRIGGER_TAG: "sensor", WEEK_CHAIN_TAG: week},
            ))
    return requests


def _week_request(context: dg.RunStatusSensorContext) -> dg.RunRequest | dg.SkipReason:
    day = context.dagster_run.tags.get(PARTITION_TAG)
    if not day:
        return dg.SkipReason("the finished daily run had no partition")
    week = week_of(day)
    day_ended = _end_time(context.instance, context.dagster_run.run_id)
    for record in context.instance.get_run_records(
            dg.RunsFilter(job_name=WEEKLY_JOB, tags={PARTITION_TAG: week}), limit=10):
        status = record.dagster_run.status
        if status in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING):
            # queued by the landing sensor with this day, or by an earlier day: it will read
            # this day's data when it starts
            return dg.SkipReason(f"week {week} already has a build waiting")
        if record.start_time and day_ended and record.start_time >= day_ended:
            return dg.SkipReason(f"week {week} was rebuilt after this day's run ended")
    return dg.RunRequest(run_key=f"{week}:{context.dagster_run.run_id}", partition_key=week,
                         tags={TRIGGER_TAG: "sensor"})


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
    return _week_request(context)


@dg.run_failure_sensor(
    name="week_after_failed_day",
    monitored_jobs=[daily_job],
    request_job=weekly_job,
    minimum_interval_seconds=FOLLOW_INTERVAL,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="A day that failed on one bad file still staged the others: rebuild its week.",
)
def week_after_failed_day(context: dg.RunFailureSensorContext):
    return _week_request(context)


sensors = [landing_sensor, week_after_day, week_after_failed_day]
