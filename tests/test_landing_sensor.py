"""The landing sensor's decisions with build_sensor_context, on both lakes:
a local directory, and S3 served by a moto server (moto stands in for Amazon S3).

Run deduplication by run key is Dagster's job at launch; here we assert the run keys the
sensor produces (same content -> same key, new content -> new key) and its cursor.
"""

import gzip
import hashlib
import json
import os
import time

import boto3
import dagster as dg
import pytest
from dagster_aws.s3 import S3Resource

from salespipe_assets.resources.lake import LocalLake
from salespipe_assets.resources.s3_lake import S3Lake
from salespipe_assets.sensors import landing_sensor
from spark_steps.contract import TABLES
from tests.servers import moto_server

BUCKET = "salespipe-test"


class LocalLanding:
    def digest(self, name: str) -> str:
        return hashlib.sha256((self.root / "raw" / name).read_bytes()).hexdigest()

    def __init__(self, root):
        self.root = root
        self.lake = LocalLake(root=str(root))

    def put(self, name: str, data: bytes) -> None:
        (self.root / "raw").mkdir(parents=True, exist_ok=True)
        path = self.root / "raw" / name
        path.write_bytes(data)
        # distinct, increasing modification times without sleeping
        self._clock = getattr(self, "_clock", time.time() - 10_000) + 1
        os.utime(path, (self._clock, self._clock))

    def exists(self, rel: str) -> bool:
        return (self.root / rel).exists()


class S3Landing:
    def __init__(self, endpoint: str):
        self.client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                                   aws_access_key_id="testing", aws_secret_access_key="testing")
        self.client.create_bucket(Bucket=BUCKET)
        self.lake = S3Lake(root=f"s3://{BUCKET}/lake", s3=S3Resource(
            endpoint_url=endpoint, region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing"))

    def digest(self, name: str) -> str:
        return hashlib.md5(self.client.get_object(Bucket=BUCKET, Key=f"lake/raw/{name}")["Body"].read()).hexdigest()

    def put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=f"lake/raw/{name}", Body=data)

    def exists(self, rel: str) -> bool:
        return "Contents" in self.client.list_objects_v2(Bucket=BUCKET, Prefix=f"lake/{rel}")


@pytest.fixture(scope="module")
def moto_endpoint():
    with moto_server() as url:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
        yield url


@pytest.fixture(params=["local", "s3"])
def landing(request, tmp_path):
    if request.param == "local":
        yield LocalLanding(tmp_path)
        return
    endpoint = request.getfixturevalue("moto_endpoint")
    landing = S3Landing(endpoint)
    yield landing
    for obj in landing.client.list_objects_v2(Bucket=BUCKET).get("Contents", []):
        landing.client.delete_object(Bucket=BUCKET, Key=obj["Key"])
    landing.client.delete_bucket(Bucket=BUCKET)


def _daily(result) -> list[dg.RunRequest]:
    return [r for r in result.run_requests if r.job_name == "daily_job"]


def _day(landing, day: str, tables=TABLES, content: bytes = b"x") -> None:
    for t in tables:
        landing.put(f"{t}_{day}.csv.gz", gzip.compress(content + t.encode(), mtime=0))


@pytest.fixture
def tick(caplog):
    """One sensor evaluation; its log lines land in caplog."""

    def evaluate(landing, instance, cursor=None):
        with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"lake": landing.lake}) as context:
            context.log.addHandler(caplog.handler)  # the sensor's logger does not propagate
            return landing_sensor(context)

    return evaluate


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def test_incomplete_day_requests_nothing_and_says_what_is_missing(landing, instance, tick, caplog):
    _day(landing, "2024-01-08", tables=("sales", "inventory", "store"))
    result = tick(landing, instance)
    assert result.run_requests == []
    assert "business day 2024-01-08 is incomplete: missing product; missing calendar" in caplog.text


def test_complete_day_requests_one_run_for_its_partition(landing, instance, tick):
    _day(landing, "2024-01-08", tables=("sales", "inventory", "store", "product"))
    first = tick(landing, instance)
    assert first.run_requests == []
    landing.put("calendar_2024-01-08.csv.gz", b"calendar")
    second = tick(landing, instance, first.cursor)
    [request, week] = second.run_requests
    assert request.job_name == "daily_job" and request.partition_key == "2024-01-08"
    assert request.run_key.startswith("2024-01-08:")
    assert request.tags["salespipe/fingerprint"] == request.run_key.split(":")[1]
    assert json.loads(request.tags["salespipe/fingerprints"]) == {"2024-01-08": request.tags["salespipe/fingerprint"]}
    # its week's run is queued behind it: same chain tag (one at a time, dagster.yaml)
    assert week.job_name == "weekly_job" and week.partition_key == "2024-01-07"
    assert week.run_key == f"2024-01-07:after:{request.run_key}"
    assert week.tags["salespipe/week_chain"] == request.tags["salespipe/week_chain"] == "landing"
    # nothing new since: the sensor skips
    third = tick(landing, instance, second.cursor)
    assert isinstance(third, dg.SkipReason)


def test_resent_file_gives_a_new_run_key_only_when_its_content_changed(landing, instance, tick):
    _day(landing, "2024-01-08")
    first = tick(landing, instance)
    [original] = _daily(first)
    _day(landing, "2024-01-08", tables=("sales",))              # same bytes, landed again
    same = tick(landing, instance, first.cursor)
    # S3 keeps the second, so the same bytes within the same second are not even new (a skip);
    # a later re-send asks again with the same run key, which Dagster deduplicates at launch
    if isinstance(same, dg.SkipReason):
        cursor = first.cursor
    else:
        assert [r.run_key for r in _daily(same)] == [original.run_key]
        cursor = same.cursor
    _day(landing, "2024-01-08", tables=("sales",), content=b"corrected")
    changed = tick(landing, instance, cursor)
    [rerun] = _daily(changed)
    assert rerun.partition_key == "2024-01-08" and rerun.run_key != original.run_key


def test_a_resend_within_the_same_second_is_still_seen(tmp_path, instance, tick):
    """S3's LastModified has one-second resolution; a correction can land in the same second."""
    landing = LocalLanding(tmp_path)
    raw = tmp_path / "raw"

    def land_at(second: float, **kw):
        _day(landing, "2024-01-08", **kw)
        for p in raw.iterdir():
            os.utime(p, (second, second))

    second = time.time() - 100
    land_at(second)
    first = tick(landing, instance)
    [original] = _daily(first)
    land_at(second, tables=("store",), content=b"corrected")
    changed = tick(landing, instance, first.cursor)
    [rerun] = _daily(changed)
    assert rerun.partition_key == "2024-01-08" and rerun.run_key != original.run_key


def _span(request: dg.RunRequest) -> tuple[str, str, str]:
    """(job, first partition, last partition) of a request for one partition or a range."""
    if request.partition_key:
        return request.job_name, request.partition_key, request.partition_key
    return (request.job_name, request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"])


def _fingerprint(day_dir_files: dict[str, bytes]) -> str:
    """The day's fingerprint worked out from its files' bytes (checksums or, on S3 for a
    single-part upload, the ETag: the MD5 of the bytes), in the SPEC's table order."""
    return hashlib.sha256("|".join(f"{t}:{h}" for t, h in day_dir_files.items()).encode()).hexdigest()[:16]


def test_several_complete_days_in_one_tick_give_one_range_run_then_one_run_for_their_weeks(landing, instance, tick):
    for day in ("2024-01-13", "2024-01-11", "2024-01-12", "2024-01-14"):
        _day(landing, day)
    result = tick(landing, instance)
    [daily, weekly] = result.run_requests
    # four consecutive days across a week boundary: one daily run over the range, the weeks behind it
    assert _span(daily) == ("daily_job", "2024-01-11", "2024-01-14")
    assert _span(weekly) == ("weekly_job", "2024-01-07", "2024-01-14")
    assert daily.tags["salespipe/week_chain"] == weekly.tags["salespipe/week_chain"] == "landing"
    fingerprints = json.loads(daily.tags["salespipe/fingerprints"])
    assert sorted(fingerprints) == ["2024-01-11", "2024-01-12", "2024-01-13", "2024-01-14"]
    digest = landing.digest
    for day, fp in fingerprints.items():
        assert fp == _fingerprint({t: digest(f"{t}_{day}.csv.gz") for t in TABLES})
    assert daily.run_key.startswith("2024-01-11..2024-01-14:")
    assert weekly.run_key == f"2024-01-07..2024-01-14:after:{daily.run_key}"


def test_days_apart_give_one_range_run_each(landing, instance, tick):
    for day in ("2024-01-08", "2024-01-09", "2024-01-11"):
        _day(landing, day)
    result = tick(landing, instance)
    assert [_span(r) for r in result.run_requests] == [
        ("daily_job", "2024-01-08", "2024-01-09"), ("daily_job", "2024-01-11", "2024-01-11"),
        ("weekly_job", "2024-01-07", "2024-01-07")]


def test_a_range_run_that_succeeded_counts_for_each_of_its_days(landing, instance, tick):
    for day in ("2024-01-08", "2024-01-09", "2024-01-10"):
        _day(landing, day)
    [daily, _] = tick(landing, instance).run_requests
    instance.add_run(dg.DagsterRun(job_name="daily_job", status=dg.DagsterRunStatus.SUCCESS, tags=daily.tags))
    assert tick(landing, instance).run_requests == []         # fresh cursor, same content: nothing
    _day(landing, "2024-01-09", tables=("sales",), content=b"corrected")
    [again, week] = tick(landing, instance).run_requests       # only the re-sent day, alone
    assert _span(again) == ("daily_job", "2024-01-09", "2024-01-09")
    assert _span(week) == ("weekly_job", "2024-01-07", "2024-01-07")


def test_restart_with_the_saved_cursor_misses_nothing_and_repeats_nothing(landing, instance, tick):
    _day(landing, "2024-01-08")
    before_restart = tick(landing, instance)
    saved = before_restart.cursor                              # what the instance keeps across restarts
    # while the daemon is down: the next day lands in full
    _day(landing, "2024-01-09")
    after_restart = tick(landing, instance, saved)
    assert [r.partition_key for r in _daily(after_restart)] == ["2024-01-09"]


def test_file_name_with_an_impossible_date_is_quarantined(landing, instance, tick, caplog):
    landing.put("sales_2024-02-30.csv.gz", b"whatever")
    result = tick(landing, instance)
    assert result.run_requests == []
    assert landing.exists("quarantine/sales_2024-02-30.csv.gz")
    assert landing.exists("quarantine/sales_2024-02-30.csv.gz.reason.json")
    assert not landing.exists("raw/sales_2024-02-30.csv.gz")
    assert "is not a valid YYYY-MM-DD date" in caplog.text


def test_a_day_already_processed_with_the_same_content_is_not_requested(landing, instance, tick):
    _day(landing, "2024-01-08")
    [request] = _daily(tick(landing, instance))
    # record a successful daily run for that content, as `salespipe run` or the daemon would
    instance.add_run(dg.DagsterRun(
        job_name="daily_job", status=dg.DagsterRunStatus.SUCCESS,
        tags={"dagster/partition": "2024-01-08", "salespipe/fingerprint": request.tags["salespipe/fingerprint"]}))
    assert tick(landing, instance).run_requests == []         # fresh cursor, same content: nothing
