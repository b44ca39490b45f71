"""The Dagster daemon killed in the middle of a range run of landed days, and started again;
and a day whose file vanished before its run, landed again.

Real processes: ``dagster-daemon run`` over the project's workspace (landing sensor, the
week-after-day sensors, the run queue) with a Dagster instance in a temp DAGSTER_HOME; real
Spark local mode in each run; a DuckDB warehouse. The daemon is killed with SIGKILL (no
clean shutdown) while the first days are being processed; more days land while it is
down, and a file already processed is landed again unchanged. After the restart every day
has run exactly once, successfully, and its week reached the warehouse. The first days
land together, so the sensor takes them in one tick: one daily run over their range.

The sensor's cursor and Dagster's run keys are what make this hold: a tick interrupted
between requesting runs and saving its cursor is evaluated again after the restart, and
the same run keys are not launched twice.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from salespipe_assets.datagen import generate
from salespipe_assets.settings import PROJECT_ROOT
from salespipe_assets.tracking import covers
from tests.servers import _descendants, start, stop

pytestmark = pytest.mark.slow

WEEK = "2024-01-07"
FIRST = ["2024-01-08", "2024-01-09"]  # landed while the daemon runs; it is killed mid-way
WHILE_DOWN = ["2024-01-10"]  # landed while the daemon is down
DAYS = FIRST + WHILE_DOWN
TIMEOUT = 900
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def _land(upstream: Path, lake: Path, day: str) -> None:
    for src in sorted((upstream / "raw").glob(f"*_{day}.csv*")):
        part = lake / "raw" / f".{src.name}.part"
        shutil.copy(src, part)
        part.rename(lake / "raw" / src.name)  # appears whole, as an upload does


def _runs(home: Path, job: str) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return list(instance.get_runs(dg.RunsFilter(job_name=job)))


def _wait(condition, what: str, daemon, log: Path, timeout: float = TIMEOUT):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if daemon is not None and daemon.poll() is not None:
            raise AssertionError(f"the daemon exited:\n{log.read_text(errors='replace')[-3000:]}")
        if value := condition():
            return value
        time.sleep(2)
    raise TimeoutError(f"{what}: not within {timeout}s\n{log.read_text(errors='replace')[-3000:]}")


def _setup(tmp_path: Path, days: list[str], config=lambda text: text):
    upstream, lake, home = tmp_path / "upstream", tmp_path / "lake", tmp_path / "home"
    (lake / "raw").mkdir(parents=True)
    home.mkdir()
    # the project's instance config, one run at a time (small shared machine)
    (home / "dagster.yaml").write_text(config(
        (PROJECT_ROOT / "dagster.yaml").read_text().replace("max_concurrent_runs: 2", "max_concurrent_runs: 1")))
    generate(upstream, dt.date.fromisoformat(days[0]), len(days), scale=0.001, seed=11, progress=False)
    env = {"DAGSTER_HOME": str(home), "SALESPIPE_LAKE": str(lake),
           "SALESPIPE_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
           "SALESPIPE_PARTITION_START": WEEK, "SALESPIPE_PARTITION_END": "2024-01-14",
           "SALESPIPE_SENSOR_INTERVAL": "2", "SALESPIPE_SETTLE_SECONDS": "2", "SUPERSET_URL": ""}
    with dg.DagsterInstance.from_config(str(home)):
        pass  # create the storage before the daemon opens it too
    return upstream, lake, home, env


DAEMON = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")]


def _covering(runs: list[dg.DagsterRun], day: str) -> list[dg.DagsterRunStatus]:
    return [r.status for r in runs if covers(r, day)]


def _week_built_after_days(home: Path, days: list[str]):
    daily = _runs(home, "daily_job")
    weekly = _runs(home, "weekly_job")
    if any(r.status not in FINISHED for r in daily + weekly):
        return None
    if not all(dg.DagsterRunStatus.SUCCESS in _covering(daily, day) for day in days):
        return None
    with dg.DagsterInstance.from_config(str(home)) as instance:
        last_day_end = max(instance.get_run_record_by_id(r.run_id).end_time for r in daily)
        built = [instance.get_run_record_by_id(r.run_id).end_time for r in weekly
                 if r.status == dg.DagsterRunStatus.SUCCESS]
    return (daily, weekly) if built and max(built) > last_day_end else None


def _kill(processes: list[int]) -> None:
    for pid in processes:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_each_day_runs_exactly_once_across_a_daemon_kill_and_restart(tmp_path):
    upstream, lake, home, env = _setup(tmp_path, DAYS)
    daemon_cmd = DAEMON
    log = tmp_path / "daemon.log"
    processes = []  # every process the daemons started, stopped at the end

    daemon = start(daemon_cmd, env=env, log=log, cwd=str(PROJECT_ROOT))
    try:
        for day in FIRST:
            _land(upstream, lake, day)
        # kill as soon as the range run of the first days has started: it is in flight
        started = {dg.DagsterRunStatus.STARTED, *FINISHED}
        [first_run] = _wait(lambda: [r for r in _runs(home, "daily_job") if r.status in started],
                            "the first daily run", daemon, log)
        processes += _descendants(daemon.pid)
        os.kill(daemon.pid, signal.SIGKILL)
        daemon.wait(timeout=30)
        killed_with = [(r.tags.get("dagster/partition"), r.status.value) for r in _runs(home, "daily_job")]

        for day in WHILE_DOWN:
            _land(upstream, lake, day)
        resent = lake / "raw" / f"sales_{FIRST[0]}.csv.gz"  # the same bytes, landed again
        os.utime(resent, (time.time(), time.time()))

        with open(log, "ab") as fh:
            fh.write(b"\n--- daemon restarted ---\n")
        daemon = start(daemon_cmd, env={**env}, log=tmp_path / "daemon2.log", cwd=str(PROJECT_ROOT))
        log = tmp_path / "daemon2.log"

        daily, weekly = _wait(lambda: _week_built_after_days(home, DAYS), "every day and its week", daemon, log)
        time.sleep(8)  # a few more ticks: nothing else may start
        daily, weekly = _runs(home, "daily_job"), _runs(home, "weekly_job")
    finally:
        stop(daemon)
        processes += [pid for pid in _descendants(daemon.pid)] if daemon.poll() is None else []
        _kill(processes)

    print(f"at the kill: {killed_with}")
    # the first days were taken in one tick: one run over their range
    assert (first_run.tags.get("dagster/asset_partition_range_start"),
            first_run.tags.get("dagster/asset_partition_range_end")) == (FIRST[0], FIRST[-1])
    per_day = {day: _covering(daily, day) for day in DAYS}
    assert per_day == {day: [dg.DagsterRunStatus.SUCCESS] for day in DAYS}, per_day
    assert len(daily) == 2  # the range, then the day landed while the daemon was down
    assert all(r.tags.get("dagster/sensor_name") == "landing_sensor" for r in daily)
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in weekly)

    manifest = json.loads((lake / f"curated/weekly_sales_inventory/week_start={WEEK}/_manifest.json").read_text())
    staged = ", ".join(f"'{lake}/staged/sales/business_date={day}/*.parquet'" for day in DAYS)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        loaded, qty = con.execute("SELECT count(*), sum(total_sales_qty) FROM weekly_sales_inventory "
                                  "WHERE week_start = DATE '2024-01-07'").fetchone()
        staged_qty = con.execute(f"SELECT sum(sales_qty) FROM read_parquet([{staged}])").fetchone()[0]
    assert loaded == manifest["row_count"] > 0
    assert qty == staged_qty  # the week in the warehouse holds every day


# Through a real daemon, two starts of it: `make test-heavy`. make test keeps the same story at
# the sensor (tests/test_landing_hostile.py, test_a_day_whose_file_vanished_before_its_run_...)
# and the daemon's kill and restart above.
@pytest.mark.heavy
def test_a_day_whose_file_vanished_before_its_run_runs_again_once_it_is_back(tmp_path):
    """The queue held (the landing chain's limit 0) while the day's sales file is deleted;
    the run then starts and fails; the file lands again and the day runs, once."""
    day = FIRST[0]
    upstream, lake, home, env = _setup(tmp_path, [day])
    real = (home / "dagster.yaml").read_text()
    held = real.replace("limit: 1", "limit: 0", 1)  # the landing chain: nothing it queues starts
    assert held != real
    (home / "dagster.yaml").write_text(held)
    processes = []
    log = tmp_path / "daemon-held.log"
    daemon = start(DAEMON, env=env, log=log, cwd=str(PROJECT_ROOT))
    try:
        _land(upstream, lake, day)
        _wait(lambda: [r for r in _runs(home, "daily_job") if r.status == dg.DagsterRunStatus.QUEUED],
              "the day's run queued", daemon, log)
        processes += _descendants(daemon.pid)
        stop(daemon)
        sales = lake / "raw" / f"sales_{day}.csv.gz"
        content = sales.read_bytes()
        sales.unlink()  # vanished while its run waited

        (home / "dagster.yaml").write_text(real)
        log = tmp_path / "daemon.log"
        daemon = start(DAEMON, env=env, log=log, cwd=str(PROJECT_ROOT))
        _wait(lambda: [r for r in _runs(home, "daily_job") if r.status == dg.DagsterRunStatus.FAILURE],
              "the day's run failing on the missing file", daemon, log)
        _wait(lambda: all(r.status in FINISHED for r in _runs(home, "daily_job") + _runs(home, "weekly_job")),
              "the queue empty", daemon, log)
        part = lake / "raw" / f".sales_{day}.csv.gz.part"
        part.write_bytes(content)
        part.rename(sales)  # the same file lands again
        daily, _ = _wait(lambda: _week_built_after_days(home, [day]), "the day and its week", daemon, log)
        time.sleep(8)  # a few more ticks: nothing else may start
        daily = _runs(home, "daily_job")
    finally:
        stop(daemon)
        processes += [pid for pid in _descendants(daemon.pid)] if daemon.poll() is None else []
        _kill(processes)
    assert sorted(s.value for s in _covering(daily, day)) == ["FAILURE", "SUCCESS"]
    assert (lake / f"staged/sales/business_date={day}").is_dir()
