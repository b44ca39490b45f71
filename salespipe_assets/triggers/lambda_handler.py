"""AWS Lambda: launch a business day's ``daily_job`` run in Dagster once its five files are in S3.

Events: S3 ``ObjectCreated`` notifications (direct, or S3 "Object Created" events routed
through EventBridge) check the days of the objects they name; a scheduled EventBridge
event sweeps the whole ``raw/`` prefix and launches every complete day that has no run
yet, oldest first. Deployed as this one file (``salespipe lambda-package``), so it imports
only the standard library and boto3, which the Lambda Python runtime provides.

Environment:
  SALESPIPE_LAKE               s3://bucket/prefix (the lake root; files land in prefix/raw/)
  DAGSTER_GRAPHQL_URL          e.g. http://dagster.internal:3000/graphql
  DAGSTER_GRAPHQL_TOKEN        optional; sent on every request, never logged
  DAGSTER_GRAPHQL_AUTH_HEADER  optional header name for the token; the default
                               ``Authorization`` carries ``Bearer <token>``, any other
                               (e.g. ``Dagster-Cloud-Api-Token``) carries the bare token
  SALESPIPE_DAGSTER_LOCATION   optional code location name (default ``salespipe``)

Idempotency: a run is tagged with the day (``dagster/partition``) and a fingerprint of
the day's five ETags (``salespipe/fingerprint``, the formula of
``salespipe_assets.resources.lake.DayFiles.fingerprint``). Before launching, runs of
the job with both tags are looked up; any that is not failed or canceled means the day
is done or under way. The GraphQL API takes no run key (``ExecutionMetadata`` has no
run id or run key field), so two invocations racing past that check are settled after
the launch: of the live runs with the same tags, the earliest created stays and a later
one is canceled by the invocation that launched it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field

import boto3

# Copy of spark_steps.contract.TABLES (this file ships alone); a test keeps them equal.
TABLES = ("sales", "inventory", "store", "product", "calendar")
LANDING_NAME = re.compile(r"^(?P<table>" + "|".join(TABLES) + r")_(?P<day>\d{4}-\d{2}-\d{2})\.csv(\.gz)?\Z")

JOB_NAME = "daily_job"
REPOSITORY_NAME = "__repository__"
PARTITION_TAG = "dagster/partition"
FINGERPRINT_TAG = "salespipe/fingerprint"
TRIGGER_TAG = "salespipe/trigger"
# A run in any of these states means the day is done or under way.
LIVE_STATUSES = ["QUEUED", "NOT_STARTED", "MANAGED", "STARTING", "STARTED", "SUSPENDED", "SUCCESS"]

log = logging.getLogger("salespipe.lambda")
log.setLevel(os.environ.get("SALESPIPE_LOG_LEVEL", "INFO"))


# --- S3: what has landed -------------------------------------------------------------

@dataclass
class LandedDay:
    day: str
    etags: dict[str, str] = field(default_factory=dict)  # table -> ETag without quotes
    keys: dict[str, str] = field(default_factory=dict)   # table -> object key
    problems: list[str] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        return [t for t in TABLES if t not in self.etags]

    @property
    def complete(self) -> bool:
        return not self.missing and not self.problems

    @property
    def fingerprint(self) -> str:
        joined = "|".join(f"{t}:{self.etags[t]}" for t in TABLES if t in self.etags)
        return hashlib.sha256(joined.encode()).hexdigest()[:16]

    def add(self, table: str, key: str, etag: str) -> None:
        if table in self.keys:
            self.problems.append(f"two files for {table}: {self.keys[table]} and {key}")
        else:
            self.keys[table], self.etags[table] = key, etag.strip('"')


def landing_day(name: str) -> tuple[str, str] | None:
    """(table, day) of a landing file name, or None if it is not one."""
    m = LANDING_NAME.match(name)
    if not m:
        return None
    try:
        dt.date.fromisoformat(m.group("day"))
    except ValueError:
        return None  # the Dagster side quarantines such names
    return m.group("table"), m.group("day")


class S3Landing:
    """The ``raw/`` folder of an ``s3://bucket/prefix`` lake, read with ListBucket only."""

    def __init__(self, lake: str, s3=None):
        parsed = urllib.parse.urlparse(lake)
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"SALESPIPE_LAKE must be s3://bucket[/prefix], not {lake!r}")
        self.bucket = parsed.netloc
        prefix = parsed.path.strip("/")
        self.raw_prefix = f"{prefix}/raw/" if prefix else "raw/"
        self.s3 = s3 or boto3.client("s3")

    def day_of_key(self, bucket: str, key: str) -> str | None:
        if bucket != self.bucket or not key.startswith(self.raw_prefix):
            return None
        found = landing_day(key[len(self.raw_prefix):])
        return found[1] if found else None

    def _objects(self, prefix: str):
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix, Delimiter="/")  # raw/'s own files, not subfolders
        for page in pages:
            yield from page.get("Contents", [])

    def _collect(self, prefix: str, days: dict[str, LandedDay]) -> None:
        for obj in self._objects(prefix):
            found = landing_day(obj["Key"][len(self.raw_prefix):])
            if found:
                table, day = found
                days.setdefault(day, LandedDay(day)).add(table, obj["Key"], obj["ETag"])

    def day(self, day: str) -> LandedDay:
        days: dict[str, LandedDay] = {}
        for table in TABLES:  # one listing per table: <table>_<day>.csv matches .csv and .csv.gz
            self._collect(f"{self.raw_prefix}{table}_{day}.csv", days)
        return days.get(day, LandedDay(day))

    def all_days(self) -> list[LandedDay]:
        days: dict[str, LandedDay] = {}
        self._collect(self.raw_prefix, days)
        return [days[d] for d in sorted(days)]


# --- Dagster GraphQL ------------------------------------------------------------------

RUNS_QUERY = """
query SalespipeDayRuns($filter: RunsFilter!) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status } }
    ... on Error { message }
  }
}
"""

LAUNCH_MUTATION = """
mutation SalespipeLaunchDay($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidStepError { invalidStepKey }
    ... on InvalidOutputError { stepKey invalidOutputName }
    ... on Error { message }
  }
}
"""

TERMINATE_MUTATION = """
mutation SalespipeYieldRun($runId: String!) {
  terminateRun(runId: $runId, terminatePolicy: MARK_AS_CANCELED_IMMEDIATELY) {
    __typename
    ... on TerminateRunFailure { message }
    ... on Error { message }
  }
}
"""


class DagsterAPIError(RuntimeError):
    pass


class DagsterGraphQL:
    def __init__(self, url: str, token: str | None = None, auth_header: str = "Authorization",
                 timeout: float = 30):
        parsed = urllib.parse.urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:  # urllib would open file: too
            raise ValueError(f"DAGSTER_GRAPHQL_URL must be an http(s) URL, not {url!r}")
        self.url, self.timeout = url, timeout
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers[auth_header] = f"Bearer {token}" if auth_header.lower() == "authorization" else token

    @classmethod
    def from_env(cls) -> "DagsterGraphQL":
        url = os.environ.get("DAGSTER_GRAPHQL_URL")
        if not url:
            raise ValueError("DAGSTER_GRAPHQL_URL is not set (e.g. http://dagster.internal:3000/graphql)")
        return cls(url, os.environ.get("DAGSTER_GRAPHQL_TOKEN") or None,
                   os.environ.get("DAGSTER_GRAPHQL_AUTH_HEADER") or "Authorization")

    def __call__(self, query: str, **variables) -> dict:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
        try:
            # http(s) only: the scheme is checked in __init__
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # nosec B310
                answer = json.load(response)
        except urllib.error.HTTPError as exc:
            detail = exc.read()[:500].decode("utf-8", "replace")
            raise DagsterAPIError(f"Dagster GraphQL at {self.url} answered HTTP {exc.code}: {detail}") from None
        if answer.get("errors"):
            raise DagsterAPIError("; ".join(e.get("message", str(e)) for e in answer["errors"]))
        return answer["data"]


def _tags(pairs: dict[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in pairs.items()]


def live_runs(gql: DagsterGraphQL, day: str, fingerprint: str) -> list[str]:
    """Run ids of live runs for this content of this day, newest first."""
    result = gql(RUNS_QUERY, filter={
        "pipelineName": JOB_NAME, "statuses": LIVE_STATUSES,
        "tags": _tags({PARTITION_TAG: day, FINGERPRINT_TAG: fingerprint})})["runsOrError"]
    if result["__typename"] != "Runs":
        raise DagsterAPIError(f"listing runs of {day}: {result['__typename']}: {result.get('message')}")
    return [r["runId"] for r in result["results"]]


def launch_run(gql: DagsterGraphQL, day: LandedDay, extra_tags: dict[str, str]) -> str:
    params = {
        "selector": {
            "repositoryLocationName": os.environ.get("SALESPIPE_DAGSTER_LOCATION") or "salespipe",
            "repositoryName": REPOSITORY_NAME,
            "jobName": JOB_NAME,
        },
        "runConfigData": {},
        "executionMetadata": {"tags": _tags({
            PARTITION_TAG: day.day, FINGERPRINT_TAG: day.fingerprint, TRIGGER_TAG: "lambda", **extra_tags})},
    }
    result = gql(LAUNCH_MUTATION, executionParams=params)["launchRun"]
    if result["__typename"] != "LaunchRunSuccess":
        detail = result.get("message") or json.dumps({k: v for k, v in result.items() if k != "__typename"})
        raise DagsterAPIError(f"launching {JOB_NAME} for {day.day}: {result['__typename']}: {detail}")
    return result["run"]["runId"]


def launch_and_settle(gql: DagsterGraphQL, day: LandedDay, extra_tags: dict[str, str]) -> tuple[str, str | None]:
    """Launch the day's run; if a concurrent invocation launched one too, keep the earliest.

    Returns (our run id, the earlier run we yielded to or None). The duplicate is marked
    canceled at once: a run that is still starting (not yet cancelable the safe way)
    then does not begin executing, and a queued or started one is terminated.
    """
    run_id = launch_run(gql, day, extra_tags)
    live = live_runs(gql, day.day, day.fingerprint)
    if run_id in live and live[-1] != run_id:
        result = gql(TERMINATE_MUTATION, runId=run_id)["terminateRun"]
        if result["__typename"] != "TerminateRunSuccess":
            raise DagsterAPIError(f"terminating duplicate run {run_id} of {day.day}: {result.get('message')}")
        return run_id, live[-1]
    return run_id, None


# --- the handler ----------------------------------------------------------------------

def event_objects(event: dict) -> list[tuple[str, str]] | None:
    """(bucket, key) of the objects an event announces; None for a scheduled sweep."""
    if event.get("detail-type") == "Scheduled Event":
        return None
    if event.get("source") == "aws.s3" and event.get("detail-type") == "Object Created":
        detail = event["detail"]
        return [(detail["bucket"]["name"], detail["object"]["key"])]
    return [
        # Keys in S3 notifications are URL-encoded (a space arrives as "+").
        (r["s3"]["bucket"]["name"], urllib.parse.unquote_plus(r["s3"]["object"]["key"]))
        for r in event.get("Records", [])
        if r.get("eventSource") == "aws:s3" and r.get("eventName", "").startswith("ObjectCreated")
    ]


def handler(event: dict, context=None) -> dict:
    landing = S3Landing(os.environ.get("SALESPIPE_LAKE", ""))
    gql = DagsterGraphQL.from_env()
    objects = event_objects(event)
    if objects is None:
        log.info("scheduled sweep of s3://%s/%s", landing.bucket, landing.raw_prefix)
        days = landing.all_days()
    else:
        wanted = sorted({d for b, k in objects if (d := landing.day_of_key(b, k))})
        if not wanted:
            log.info("no landing file of s3://%s/%s in this event: nothing to do", landing.bucket, landing.raw_prefix)
        days = [landing.day(d) for d in wanted]

    extra_tags = {"salespipe/lambda_request_id": context.aws_request_id} if getattr(context, "aws_request_id", None) else {}
    summary: dict = {"launched": {}, "already_running_or_done": {}, "incomplete": {}, "errors": {}}
    for day in days:
        if not day.complete:
            problems = [f"missing {', '.join(day.missing)}"] if day.missing else []
            summary["incomplete"][day.day] = problems + day.problems
            if objects is not None:  # a sweep sees every partial day of the lake: not news
                log.info("business day %s is incomplete (%s): no run launched", day.day, "; ".join(problems + day.problems))
            continue
        try:
            existing = live_runs(gql, day.day, day.fingerprint)
            if existing:
                summary["already_running_or_done"][day.day] = existing[-1]
                log.info("business day %s (fingerprint %s) already has run %s: not launching another",
                         day.day, day.fingerprint, existing[-1])
                continue
            run_id, kept = launch_and_settle(gql, day, extra_tags)
        except (DagsterAPIError, OSError) as exc:
            summary["errors"][day.day] = str(exc)
            log.error("business day %s: %s", day.day, exc)
            continue
        if kept:
            summary["already_running_or_done"][day.day] = kept
            log.info("business day %s: a concurrent invocation launched run %s first; terminated our run %s",
                     day.day, kept, run_id)
        else:
            summary["launched"][day.day] = run_id
            log.info("business day %s complete: launched %s run %s (fingerprint %s)",
                     day.day, JOB_NAME, run_id, day.fingerprint)
    if objects is None and summary["incomplete"]:
        log.info("incomplete days left waiting: %s", ", ".join(
            f"{d} ({'; '.join(p)})" for d, p in summary["incomplete"].items()))
    if summary["errors"]:
        # Fail the invocation so Lambda retries it; the days already launched are skipped then.
        raise DagsterAPIError("; ".join(f"{d}: {e}" for d, e in summary["errors"].items()))
    return summary
