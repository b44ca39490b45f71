"""What has already run, read from the Dagster instance: shared by `salespipe run` and
the sensors so that neither processes a day's content twice."""

from __future__ import annotations

import dagster as dg

FINGERPRINT_TAG = "salespipe/fingerprint"
TRIGGER_TAG = "salespipe/trigger"
PARTITION_TAG = "dagster/partition"
# The landing sensor queues a day's run and its week's run together, both with this tag
# (the week); dagster.yaml limits runs with the same value to one at a time, so the week
# starts when its days are done.
WEEK_CHAIN_TAG = "salespipe/week_chain"
DAILY_JOB = "daily_job"
WEEKLY_JOB = "weekly_job"


def latest_run(instance: dg.DagsterInstance, job: str, partition: str,
               statuses: list[dg.DagsterRunStatus] | None = None) -> dg.RunRecord | None:
    records = instance.get_run_records(
        dg.RunsFilter(job_name=job, tags={PARTITION_TAG: partition}, statuses=statuses or []), limit=1)
    return records[0] if records else None


def day_done(instance: dg.DagsterInstance, day: str, fingerprint: str) -> bool:
    """A successful daily run already processed exactly this content."""
    done = latest_run(instance, DAILY_JOB, day, [dg.DagsterRunStatus.SUCCESS])
    return bool(done and done.dagster_run.tags.get(FINGERPRINT_TAG) == fingerprint)


def day_pending(instance: dg.DagsterInstance, day: str, fingerprint: str) -> bool:
    """A daily run for exactly this content is queued or running."""
    runs = instance.get_run_records(dg.RunsFilter(
        job_name=DAILY_JOB, tags={PARTITION_TAG: day, FINGERPRINT_TAG: fingerprint},
        statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                  dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]), limit=1)
    return bool(runs)
