"""What has already run, read from the Dagster instance: shared by `salespipe run` and
the sensors so that neither processes a day's content twice.

A daily run covers one day (tag ``dagster/partition``) or a range of days (Dagster's
single-run backfill tags ``dagster/asset_partition_range_start`` / ``_end``). The content
it processed is in ``salespipe/fingerprints``: a JSON object, day -> fingerprint of the
day's five files. A one-day run also carries ``salespipe/fingerprint`` (what earlier
versions wrote, still read). A day is *done* when the latest successful run covering it
processed the day's current fingerprint; a run that did not succeed never counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from pathlib import Path

import dagster as dg

FINGERPRINT_TAG = "salespipe/fingerprint"
FINGERPRINTS_TAG = "salespipe/fingerprints"
TRIGGER_TAG = "salespipe/trigger"
# host:pid:start-time of the process that executes the run in-process (`salespipe run`):
# the daemon does not watch those runs, so a killed one is recognised here.
PROCESS_TAG = "salespipe/process"
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
# Every run the landing sensor queues carries this tag with one value, and dagster.yaml
# lets one run per value run at a time: the sensor's runs start one after another in the
# order requested, so a week's run starts after the days before it, and two runs never
# write the same day or week at once (a range can touch many weeks; one value per week
# could not keep a range and a later day of one of its weeks apart).
WEEK_CHAIN_TAG = "salespipe/week_chain"
LANDING_CHAIN = "landing"
DAILY_JOB = "daily_job"
WEEKLY_JOB = "weekly_job"

_WAITING = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]
_NOT_SUCCEEDED = [dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


# -- tags for a run over a range of days (or weeks) --------------------------------

def partition_tags(keys: list[str]) -> dict[str, str]:
    """One key: ``dagster/partition``; several (contiguous, sorted): the range tags."""
    if len(keys) == 1:
        return {PARTITION_TAG: keys[0]}
    return {RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]}


def fingerprint_tags(fingerprints: dict[str, str]) -> dict[str, str]:
    """What content each day of the run is: day -> fingerprint."""
    ordered = dict(sorted(fingerprints.items()))
    tags = {FINGERPRINTS_TAG: json.dumps(ordered, separators=(",", ":"))}
    if len(ordered) == 1:
        tags[FINGERPRINT_TAG] = next(iter(ordered.values()))
    return tags


def range_tags(fingerprints: dict[str, str]) -> dict[str, str]:
    """Partition (or range) and fingerprint tags for a daily run over these days."""
    return {**partition_tags(sorted(fingerprints)), **fingerprint_tags(fingerprints)}


def content_key(fingerprints: dict[str, str]) -> str:
    """``day:fingerprint`` for one day (the run key earlier versions used), else the
    range and a digest of every day's fingerprint."""
    days = sorted(fingerprints)
    if len(days) == 1:
        return f"{days[0]}:{fingerprints[days[0]]}"
    joined = "|".join(f"{d}:{fingerprints[d]}" for d in days)
    return f"{days[0]}..{days[-1]}:{hashlib.sha256(joined.encode()).hexdigest()[:16]}"


def process_tags() -> dict[str, str]:
    """Tags for a run executed in this process (``execute_in_process``)."""
    return {PROCESS_TAG: f"{socket.gethostname()}:{os.getpid()}:{_started(os.getpid())}"}


# -- what a run covers ---------------------------------------------------------------

def covers(run: dg.DagsterRun, key: str) -> bool:
    tags = run.tags
    if PARTITION_TAG in tags:
        return tags[PARTITION_TAG] == key
    start, end = tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)
    return bool(start and end and start <= key <= end)  # ISO dates order as strings


def processed(run: dg.DagsterRun, day: str) -> str | None:
    """The fingerprint of ``day`` that ``run`` processed (None: not covered, or unknown)."""
    if not covers(run, day):
        return None
    try:
        known = json.loads(run.tags.get(FINGERPRINTS_TAG, "{}"))
    except ValueError:
        known = {}
    if day in known:
        return known[day]
    return run.tags.get(FINGERPRINT_TAG) if PARTITION_TAG in run.tags else None


def runs_covering(instance: dg.DagsterInstance, job: str, key: str,
                  statuses: list[dg.DagsterRunStatus] | None = None, limit: int | None = None) -> list[dg.RunRecord]:
    """Run records of ``job`` covering partition ``key`` (alone or in a range), newest first."""
    records = _records_covering(instance, job, [key], statuses or [])
    return records[:limit] if limit else records


def _records_covering(instance: dg.DagsterInstance, job: str, keys: list[str],
                      statuses: list[dg.DagsterRunStatus]) -> list[dg.RunRecord]:
    """Records of ``job``'s runs covering any of ``keys``, newest first: the one-partition
    runs by tag, the range runs among those whose range starts no later than the last key
    (a RunsFilter cannot ask for "a range containing", but can for a list of starts)."""
    if not keys:
        return []
    records = list(instance.get_run_records(dg.RunsFilter(
        job_name=job, statuses=statuses, tags={PARTITION_TAG: sorted(set(keys))})))
    starts = sorted({start for _, values in instance.get_run_tags(tag_keys=[RANGE_START_TAG])
                     for start in values if start <= max(keys)})
    if starts:
        records += [r for r in instance.get_run_records(dg.RunsFilter(
            job_name=job, statuses=statuses, tags={RANGE_START_TAG: starts}))
            if any(covers(r.dagster_run, k) for k in keys)]
    return sorted(records, key=lambda r: r.storage_id, reverse=True)


def latest_run(instance: dg.DagsterInstance, job: str, partition: str,
               statuses: list[dg.DagsterRunStatus] | None = None) -> dg.RunRecord | None:
    records = runs_covering(instance, job, partition, statuses, limit=1)
    return records[0] if records else None


# -- done, pending, failed -------------------------------------------------------------

def days_done(instance: dg.DagsterInstance, fingerprints: dict[str, str]) -> set[str]:
    """The days whose latest successful daily run (by end time) processed this fingerprint."""
    succeeded = sorted(_daily_records(instance, [dg.DagsterRunStatus.SUCCESS], fingerprints),
                       key=lambda r: (r.end_time or 0, r.storage_id), reverse=True)
    done = set()
    for day, fingerprint in fingerprints.items():
        latest = next((r for r in succeeded if covers(r.dagster_run, day)), None)
        if latest and processed(latest.dagster_run, day) == fingerprint:
            done.add(day)
    return done


def day_done(instance: dg.DagsterInstance, day: str, fingerprint: str) -> bool:
    """A successful daily run already processed exactly this content."""
    return day in days_done(instance, {day: fingerprint})


def days_pending(instance: dg.DagsterInstance, fingerprints: dict[str, str]) -> set[str]:
    """The days a queued or running daily run is processing with this fingerprint. A
    STARTED run whose `salespipe run` process is gone does not count (see ``fail_dead_runs``)."""
    active = [r for r in _daily_records(instance, [*_WAITING, dg.DagsterRunStatus.STARTED], fingerprints)
              if not _dead(r.dagster_run)]
    return {day for day, fp in fingerprints.items() if any(processed(r.dagster_run, day) == fp for r in active)}


def day_pending(instance: dg.DagsterInstance, day: str, fingerprint: str) -> bool:
    """A daily run for exactly this content is queued or running."""
    return day in days_pending(instance, {day: fingerprint})


def failed_attempts(instance: dg.DagsterInstance, fingerprints: dict[str, str]) -> int:
    """How often a run for one of these days with its content has failed (most for any
    day): part of the sensor's run key, so a failed attempt does not use up the content."""
    failed = _daily_records(instance, _NOT_SUCCEEDED, fingerprints)
    return max((sum(processed(r.dagster_run, day) == fp for r in failed) for day, fp in fingerprints.items()),
               default=0)


def fail_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark failed every STARTED run whose executing process (``PROCESS_TAG``, this host)
    is gone, e.g. a `salespipe run` killed with SIGKILL; return their run ids."""
    gone = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        run = record.dagster_run
        if _dead(run):
            instance.report_run_failed(run, message=f"the process that ran it ({run.tags[PROCESS_TAG]}) is gone")
            gone.append(run.run_id)
    return gone


# -- helpers ------------------------------------------------------------------------------

def _daily_records(instance: dg.DagsterInstance, statuses: list[dg.DagsterRunStatus],
                   fingerprints: dict[str, str]) -> list[dg.RunRecord]:
    """Daily run records in these statuses covering one of the days."""
    return _records_covering(instance, DAILY_JOB, list(fingerprints), statuses)


def _dead(run: dg.DagsterRun) -> bool:
    if run.status != dg.DagsterRunStatus.STARTED or PROCESS_TAG not in run.tags:
        return False
    host, _, rest = run.tags[PROCESS_TAG].partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's process: run monitoring's business
    return _started(int(pid)) != started


def _started(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot; "" if there is no such
    process): a pid reused by a later process does not pass for the original."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return ""
        except PermissionError:
            pass
        return "?"  # alive; no /proc to tell a reused pid
    return stat.rsplit(")", 1)[1].split()[19]
