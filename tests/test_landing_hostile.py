"""Hostile upstreams at the landing zone (issue 18): files still being written, names in
flight, links out of the lake, control characters in names, a day whose file vanished
before its run, and a `salespipe run` killed with its run left STARTED; plus the range
split of issue 14 and the sensor interval from Settings.

Real components: the landing sensor evaluated with build_sensor_context against a real
(temporary) Dagster instance, a real local lake directory, `salespipe run`'s run_lake.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from salespipe_assets.definitions import build_definitions
from salespipe_assets.resources.lake import LocalLake
from salespipe_assets.runner import settled_scan, run_lake
from salespipe_assets.sensors import build_landing_sensor, landing_requests, landing_sensor
from salespipe_assets.settings import Settings
from salespipe_assets.tracking import range_tags
from spark_steps.contract import TABLES

DAY = "2024-01-08"


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _put(root: Path, name: str, data: bytes, age: float = 1000) -> Path:
    (root / "raw").mkdir(parents=True, exist_ok=True)
    path = root / "raw" / name
    path.write_bytes(data)
    os.utime(path, (time.time() - age, time.time() - age))  # landed a while ago: settled
    return path


def _land_day(root: Path, day: str = DAY, tables=TABLES) -> None:
    for t in tables:
        _put(root, f"{t}_{day}.csv", f"{t} of {day}\n".encode())


def _fingerprint(root: Path, day: str) -> str:
    """The day's fingerprint from its files' bytes: SHA-256 of each, joined in table order."""
    parts = [f"{t}:{hashlib.sha256((root / 'raw' / f'{t}_{day}.csv').read_bytes()).hexdigest()}" for t in TABLES]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


class Sensor:
    """The landing sensor evaluated tick after tick, its cursor carried as the daemon does."""

    def __init__(self, lake: LocalLake, instance: dg.DagsterInstance, caplog):
        self.lake, self.instance, self.caplog, self.cursor = lake, instance, caplog, None
        self.skips: list[str] = []  # the skip reasons, as the UI's tick history shows them

    def tick(self):
        with dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                     resources={"lake": self.lake}) as context:
            context.log.addHandler(self.caplog.handler)  # the sensor's logger does not propagate
            result = landing_sensor(context)
        if isinstance(result, dg.SensorResult):
            self.cursor = result.cursor
            return result.run_requests or []
        if isinstance(result, dg.SkipReason):
            self.skips.append(result.skip_message or "")
        return []


def _daily(requests) -> list[dg.RunRequest]:
    return [r for r in requests if r.job_name == "daily_job"]


# -- 1. files still being written ------------------------------------------------------

def test_a_file_written_slowly_at_its_final_name_gives_one_run_from_its_full_content(tmp_path, instance, caplog):
    _land_day(tmp_path, tables=[t for t in TABLES if t != "sales"])
    sensor = Sensor(LocalLake(root=str(tmp_path), settle_seconds=1.5), instance, caplog)
    chunks = [f"line {i}\n".encode() * 50 for i in range(14)]
    # A first tick before the writer starts (the day lacks its sales file): the sensor's first
    # evaluation is slow on a busy machine, and the ticks below must see the file mid-write.
    assert sensor.tick() == []

    def write_slowly():  # 14 chunks 0.25 s apart: 3.5 s, each pause well inside the quiet period
        with open(tmp_path / "raw" / f"sales_{DAY}.csv", "wb") as out:
            for chunk in chunks:
                out.write(chunk)
                out.flush()
                time.sleep(0.25)

    writer = threading.Thread(target=write_slowly)
    writer.start()
    requests = []
    while writer.is_alive():
        requests += sensor.tick()
        time.sleep(0.1)
    assert requests == []  # nothing is taken while the file is being written
    deadline = time.time() + 4  # the quiet period, twice over, and then some
    while time.time() < deadline:
        requests += sensor.tick()
        time.sleep(0.1)
    [daily] = _daily(requests)
    assert (tmp_path / "raw" / f"sales_{DAY}.csv").read_bytes() == b"".join(chunks)
    assert daily.partition_key == DAY and daily.tags["salespipe/fingerprint"] == _fingerprint(tmp_path, DAY)
    # said in the day's log line, or in the tick's skip reason once the day's other files are taken
    assert any("still being written" in text for text in [caplog.text, *sensor.skips])


def test_names_in_flight_are_never_listed(tmp_path):
    _land_day(tmp_path)
    for name in (f".sales_{DAY}.csv", f"sales_{DAY}.csv.tmp", f"sales_{DAY}.csv.part", f"sales_{DAY}.csv._COPYING_"):
        _put(tmp_path, name, b"half a file")
    listed = {f.rel for f in LocalLake(root=str(tmp_path), settle_seconds=1.0).list_landed()}
    assert listed == {f"raw/{t}_{DAY}.csv" for t in TABLES}


def test_salespipe_run_leaves_a_day_with_a_file_still_being_written_incomplete(tmp_path, instance):
    _land_day(tmp_path)
    growing = tmp_path / "raw" / f"inventory_{DAY}.csv"
    stop = threading.Event()

    def keep_writing():  # a writer that has not finished when the quiet period is over
        while not stop.wait(0.2):
            with growing.open("ab") as f:
                f.write(b"")
            os.utime(growing)

    os.utime(growing)  # written to a moment ago, and still being written to
    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        lake = LocalLake(root=str(tmp_path), settle_seconds=1.5)
        started = time.time()
        summary = run_lake(build_definitions(), instance, lake, progress=False)
    finally:
        stop.set()
        writer.join()
    assert time.time() - started >= 1.5  # it waited the quiet period once, from the listing
    assert summary.days == [] and summary.weeks == []
    [problem] = summary.incomplete[DAY]
    assert problem.startswith(f"raw/inventory_{DAY}.csv is still being written")


def test_salespipe_run_waits_for_files_written_just_before_it(tmp_path):
    """`make run` generates the files and runs at once: a file that stops changing within
    the quiet period is waited for (from its listed modification time), not left out."""
    _land_day(tmp_path)
    os.utime(tmp_path / "raw" / f"inventory_{DAY}.csv")  # written a moment ago, then left alone
    lake = LocalLake(root=str(tmp_path), settle_seconds=1.5)
    assert not all(f.settled for f in lake.list_landed())
    started = time.time()
    scan = settled_scan(lake, progress=False)
    assert 1.0 <= time.time() - started < 10
    assert [d.day for d in scan.complete_days] == [DAY] and not scan.incomplete_days


# -- 2. names and links in raw/ ---------------------------------------------------------

def test_a_link_out_of_the_lake_is_quarantined_and_never_read(tmp_path, instance, caplog):
    lake_root, outside = tmp_path / "lake", tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.csv"
    secret.write_bytes(b"not the lake's\n")
    _land_day(lake_root, tables=[t for t in TABLES if t != "sales"])
    (lake_root / "raw" / f"sales_{DAY}.csv").symlink_to(secret)
    sensor = Sensor(LocalLake(root=str(lake_root), settle_seconds=0.0), instance, caplog)
    assert sensor.tick() == []
    moved = lake_root / "quarantine" / f"sales_{DAY}.csv"
    assert moved.is_symlink() and secret.read_bytes() == b"not the lake's\n"  # the link moved, not its target
    reason = json.loads((lake_root / "quarantine" / f"sales_{DAY}.csv.reason.json").read_text())["reason"]
    assert "symbolic link" in reason and "outside the lake" in reason and str(secret) in reason
    assert f"business day {DAY} is incomplete: missing sales" in caplog.text


def test_salespipe_run_refuses_a_link_out_of_the_lake_too(tmp_path, instance):
    lake_root = tmp_path / "lake"
    _land_day(lake_root, tables=[t for t in TABLES if t != "store"])
    (tmp_path / "store.csv").write_bytes(b"elsewhere\n")
    (lake_root / "raw" / f"store_{DAY}.csv").symlink_to(tmp_path / "store.csv")
    summary = run_lake(build_definitions(), instance, LocalLake(root=str(lake_root), settle_seconds=0.0),
                       progress=False)
    assert summary.days == []
    [error] = summary.errors
    assert error.startswith(f"raw/store_{DAY}.csv: a symbolic link to ") and "outside the lake" in error
    assert summary.incomplete[DAY] == ["missing store"]


@pytest.mark.parametrize("name", [f"sales_{DAY}.csv\n", f"sales_2024-01\x01-08.csv", f"sales_{DAY}\x1b.csv"])
def test_a_control_character_in_a_name_is_the_reason_given_on_one_line(tmp_path, instance, caplog, name):
    _put(tmp_path, name, b"a,b\n")
    sensor = Sensor(LocalLake(root=str(tmp_path), settle_seconds=0.0), instance, caplog)
    assert sensor.tick() == []
    assert not (tmp_path / "raw" / name).exists()
    [reason_file] = (tmp_path / "quarantine").glob("*.reason.json")
    reason = json.loads(reason_file.read_text())
    assert reason["file"] == f"raw/{name}"
    assert "control character" in reason["reason"] and "date" not in reason["reason"]
    assert "\n" not in reason["reason"] and "\n" not in reason["quarantined_to"]
    [logged] = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert "\n" not in logged and "\x01" not in logged and "\x1b" not in logged and "control character" in logged


# -- 3. a failed attempt does not use up the day's content --------------------------------

def _as_launched(instance, request: dg.RunRequest, status: dg.DagsterRunStatus, extra: dict | None = None):
    """The run the daemon would have launched for ``request``, in ``status``."""
    tags = {**request.tags, "dagster/run_key": request.run_key, "dagster/sensor_name": "landing_sensor",
            **({"dagster/partition": request.partition_key} if request.partition_key else {}), **(extra or {})}
    return instance.add_run(dg.DagsterRun(job_name=request.job_name, status=status, tags=tags))


def test_a_day_whose_file_vanished_before_its_run_runs_once_the_file_is_back(tmp_path, instance, caplog):
    _land_day(tmp_path)
    sensor = Sensor(LocalLake(root=str(tmp_path), settle_seconds=0.0), instance, caplog)
    [first] = _daily(sensor.tick())
    sales = tmp_path / "raw" / f"sales_{DAY}.csv"
    content = sales.read_bytes()
    sales.unlink()  # vanished while the run waited in the queue: the run fails
    _as_launched(instance, first, dg.DagsterRunStatus.FAILURE)
    assert sensor.tick() == []
    sales.write_bytes(content)  # the same file lands again
    [again] = _daily(sensor.tick())
    assert again.partition_key == DAY and again.tags["salespipe/fingerprint"] == first.tags["salespipe/fingerprint"]
    used = {r.tags.get("dagster/run_key") for r in instance.get_runs()}
    assert again.run_key not in used  # Dagster launches it: its run key was never used
    _as_launched(instance, again, dg.DagsterRunStatus.FAILURE)  # and if that attempt fails too
    os.utime(sales)
    [third] = _daily(sensor.tick())
    assert third.run_key not in {r.tags.get("dagster/run_key") for r in instance.get_runs()}


# -- 4. a run that did not succeed never counts as processed ------------------------------

def _tags_of_a_process_that_is_gone() -> dict:
    out = subprocess.run([sys.executable, "-c", "import json; from salespipe_assets.tracking import process_tags;"
                          "print(json.dumps(process_tags()))"], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_a_run_left_started_by_a_killed_salespipe_run_does_not_block_its_day(tmp_path, instance, caplog):
    _land_day(tmp_path)
    fingerprint = _fingerprint(tmp_path, DAY)
    killed = instance.add_run(dg.DagsterRun(
        job_name="daily_job", status=dg.DagsterRunStatus.STARTED,
        tags={**range_tags({DAY: fingerprint}), "salespipe/trigger": "cli", **_tags_of_a_process_that_is_gone()}))
    sensor = Sensor(LocalLake(root=str(tmp_path), settle_seconds=0.0), instance, caplog)
    [request] = _daily(sensor.tick())
    assert request.partition_key == DAY and request.tags["salespipe/fingerprint"] == fingerprint
    assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE  # marked failed


def test_a_run_still_running_in_a_live_process_keeps_its_day_pending(tmp_path, instance, caplog):
    from salespipe_assets.tracking import process_tags

    _land_day(tmp_path)
    running = instance.add_run(dg.DagsterRun(
        job_name="daily_job", status=dg.DagsterRunStatus.STARTED,
        tags={**range_tags({DAY: _fingerprint(tmp_path, DAY)}), "salespipe/trigger": "cli", **process_tags()}))
    sensor = Sensor(LocalLake(root=str(tmp_path), settle_seconds=0.0), instance, caplog)
    assert sensor.tick() == []
    assert f"business day {DAY} with this content is already queued or running" in caplog.text
    assert instance.get_run_by_id(running.run_id).status == dg.DagsterRunStatus.STARTED


# -- issue 14: ranges split by contiguity and size; 16.5: the interval from Settings -------

def test_days_beyond_the_runs_limit_are_split_into_several_range_runs(instance):
    days = {f"2024-01-{d:02d}": f"fp{d}" for d in range(8, 18)}  # ten consecutive days, two weeks
    requests = landing_requests(instance, days, days_per_run=4, weeks_per_run=1)
    spans = [(r.job_name, r.partition_key or r.tags["dagster/asset_partition_range_start"],
              r.partition_key or r.tags["dagster/asset_partition_range_end"]) for r in requests]
    assert spans == [("daily_job", "2024-01-08", "2024-01-11"), ("daily_job", "2024-01-12", "2024-01-15"),
                     ("daily_job", "2024-01-16", "2024-01-17"),
                     ("weekly_job", "2024-01-07", "2024-01-07"), ("weekly_job", "2024-01-14", "2024-01-14")]
    assert json.loads(requests[1].tags["salespipe/fingerprints"]) == {
        "2024-01-12": "fp12", "2024-01-13": "fp13", "2024-01-14": "fp14", "2024-01-15": "fp15"}
    assert len({r.run_key for r in requests}) == len(requests)


def test_the_sensor_interval_comes_from_settings(monkeypatch):
    monkeypatch.setenv("SALESPIPE_SENSOR_INTERVAL", "9")
    settings = Settings.from_env()
    assert settings.sensor_interval == 9
    assert build_landing_sensor(dataclasses.replace(settings, sensor_interval=7)).minimum_interval_seconds == 7
    monkeypatch.setenv("SALESPIPE_SENSOR_INTERVAL", "soon")
    with pytest.raises(ValueError, match="SALESPIPE_SENSOR_INTERVAL"):
        Settings.from_env()


def _finished_range_run(instance, start: str, end: str) -> dg.DagsterRun:
    from dagster._core.events import DagsterEvent, DagsterEventType

    run = instance.add_run(dg.DagsterRun(job_name="daily_job", status=dg.DagsterRunStatus.NOT_STARTED, tags={
        "dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end}))
    for kind in (DagsterEventType.PIPELINE_START, DagsterEventType.PIPELINE_SUCCESS):
        instance.run_storage.handle_run_event(run.run_id, DagsterEvent(kind.value, "daily_job"))
    return instance.get_run_by_id(run.run_id)


def _week_after(instance, run: dg.DagsterRun):
    from dagster._core.events import DagsterEvent, DagsterEventType

    from salespipe_assets.sensors import _week_request

    return _week_request(dg.build_run_status_sensor_context(
        sensor_name="week_after_day", dagster_instance=instance, dagster_run=run,
        dagster_event=DagsterEvent(DagsterEventType.PIPELINE_SUCCESS.value, "daily_job")))


def test_a_range_run_from_the_ui_is_followed_by_one_run_for_its_weeks(instance):
    run = _finished_range_run(instance, "2024-01-12", "2024-01-22")  # three weeks
    request = _week_after(instance, run)
    assert isinstance(request, dg.RunRequest) and request.job_name == "weekly_job"
    assert (request.tags["dagster/asset_partition_range_start"],
            request.tags["dagster/asset_partition_range_end"]) == ("2024-01-07", "2024-01-21")
    # a build of the middle week waiting in the queue (in a range of its own) covers that week
    instance.add_run(dg.DagsterRun(job_name="weekly_job", status=dg.DagsterRunStatus.NOT_STARTED, tags={
        "dagster/asset_partition_range_start": "2024-01-14", "dagster/asset_partition_range_end": "2024-01-14"}))
    first, last = _week_after(instance, run)
    assert (first.partition_key, last.partition_key) == ("2024-01-07", "2024-01-21")
