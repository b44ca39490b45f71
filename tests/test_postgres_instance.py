"""The postgres instance profile on a real PostgreSQL, and run monitoring.

One PostgreSQL server (Debian's package, tests/postgres.py) for the module, a database per
test. Real processes: ``dagster-daemon run`` over the project's workspace and
``salespipe dev --code-server``; real Spark local mode in the runs that get that far.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from salespipe_assets.datagen import generate
from salespipe_assets.instance import instance_yaml
from salespipe_assets.settings import PROJECT_ROOT
from tests import test_daemon_restart as restart
from tests.postgres import running_postgres, unavailable_reason
from tests.servers import _descendants, free_port, start, stop, wait_http

_SKIP = unavailable_reason()
pytestmark = pytest.mark.skipif(_SKIP is not None, reason=f"PostgreSQL tests skipped: {_SKIP}")

IN_FLIGHT = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}

DRIVER, LAUNCHER = "org.apache.spark.deploy.SparkSubmit", "org.apache.spark.launcher.Main"


@pytest.fixture(scope="module")
def postgres():
    with running_postgres() as server:
        yield server


@pytest.fixture
def pg_env(postgres, request, monkeypatch):
    """A fresh database for the test; DAGSTER_PG_* point at it (here and in the processes started)."""
    env = postgres.create_database(re.sub(r"\W", "_", request.node.name)[:60].lower())
    for key, value in {**env, "SALESPIPE_INSTANCE": "postgres"}.items():
        monkeypatch.setenv(key, value)
    return env


def _tables(postgres, db: str) -> dict[str, int]:
    con = postgres.connect(db)
    try:
        with con.cursor() as cur:
            cur.execute("SELECT count(*) FROM runs")
            runs = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM event_logs")
            events = cur.fetchone()[0]
            cur.execute("SELECT count(*) FROM instigators")
            instigators = cur.fetchone()[0]
        return {"runs": runs, "event_logs": events, "instigators": instigators}
    finally:
        con.close()


def _sqlite_files(home: Path) -> list[str]:
    return sorted(str(p.relative_to(home)) for p in home.rglob("*.db"))


def test_the_postgres_profile_stores_runs_and_events_in_postgres_and_reads_the_password_from_env(
        postgres, pg_env, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml("postgres"))
    assert postgres.password not in (home / "dagster.yaml").read_text()

    @dg.asset
    def one() -> int:
        return 1

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert instance.run_monitoring_enabled
        result = dg.materialize([one], instance=instance)
        assert result.success
    counts = _tables(postgres, pg_env["DAGSTER_PG_DB"])
    assert counts["runs"] == 1 and counts["event_logs"] > 0
    assert _sqlite_files(home) == []  # nothing in SQLite under DAGSTER_HOME

    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "not-the-password")
    with pytest.raises(Exception) as failed:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            instance.get_runs()
    chain, exc = [], failed.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert "password authentication failed" in "\n".join(chain)


# The daemon-restart scenario again, on Postgres: `make test-heavy`. make test runs it on the
# SQLite instance (tests/test_daemon_restart.py), and the tests below put runs, events,
# run monitoring and a code server on Postgres.
@pytest.mark.heavy
def test_daemon_restart_on_postgres(postgres, pg_env, tmp_path, monkeypatch, spark_remote):
    """tests/test_daemon_restart.py as it is, with the postgres profile as the project's
    dagster.yaml: each day runs exactly once across a daemon SIGKILL, its week reaches the
    warehouse (an end-to-end run: landing, staging, fact, warehouse), all of it in Postgres.
    Its runs use the test session's Spark Connect server, as in tests/test_daemon_restart.py
    (a cold JVM per run otherwise; the run-monitoring test below needs each run's own JVM)."""
    monkeypatch.setenv("SALESPIPE_SPARK_REMOTE", spark_remote)
    monkeypatch.setenv("SPARK_REMOTE", spark_remote)
    project = tmp_path / "project"
    project.mkdir()
    (project / "dagster.yaml").write_text(instance_yaml("postgres"))
    shutil.copy(PROJECT_ROOT / "workspace.yaml", project / "workspace.yaml")
    monkeypatch.setattr(restart, "PROJECT_ROOT", project)
    run_dir = tmp_path / "run"
    run_dir.mkdir()

    restart.test_each_day_runs_exactly_once_across_a_daemon_kill_and_restart(run_dir)

    counts = _tables(postgres, pg_env["DAGSTER_PG_DB"])
    with dg.DagsterInstance.from_config(str(run_dir / "home")) as instance:
        assert counts["runs"] == len(instance.get_runs()) >= len(restart.DAYS) + 1
    assert counts["instigators"] >= 1  # the landing sensor's state and cursor
    assert _sqlite_files(run_dir / "home") == []


# --- run monitoring ------------------------------------------------------------------------

MAX_RUNTIME = 45  # long enough for the run to get to Spark; the hang starts there
POLL = 2
WEEK = "2024-01-07"
DAYS = ["2024-01-08", "2024-01-09"]


def _week_runs(home: Path) -> list[dg.DagsterRun]:
    """The runs the landing sensor queued (all in one week chain: one at a time)."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return [r for r in instance.get_runs() if "salespipe/week_chain" in r.tags]


def _worker_pid(home: Path, run_id: str) -> int | None:
    """The run worker's PID, from the engine event it logs when it starts."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            if m := re.search(r"Started process for run \(pid: (\d+)\)", _message(record)):
                return int(m.group(1))
    return None


def _message(record) -> str:
    return (record.dagster_event.message if record.dagster_event else None) or record.user_message or ""


def _messages(home: Path, run_id: str) -> str:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return "\n".join(_message(r) for r in instance.all_logs(run_id))


def _started_worker(home: Path, exclude: set[str]):
    """A STARTED run not in ``exclude`` whose worker has logged its PID."""
    for run in _week_runs(home):
        if run.run_id not in exclude and run.status == dg.DagsterRunStatus.STARTED:
            if pid := _worker_pid(home, run.run_id):
                return run, pid
    return None


def _status(home: Path, run_id: str) -> dg.DagsterRunStatus:
    with dg.DagsterInstance.from_config(str(home)) as instance:
        return instance.get_run_by_id(run_id).status


def test_run_monitoring_fails_a_killed_worker_and_terminates_a_hung_run_and_the_week_goes_on(
        postgres, pg_env, tmp_path):
    upstream, lake, home = tmp_path / "upstream", tmp_path / "lake", tmp_path / "home"
    (lake / "raw").mkdir(parents=True)
    home.mkdir()
    text = instance_yaml("postgres")
    assert "poll_interval_seconds: 30" in text and "max_concurrent_runs: 2" in text, "dagster.yaml changed"
    (home / "dagster.yaml").write_text(text.replace("poll_interval_seconds: 30", f"poll_interval_seconds: {POLL}")
                                       .replace("max_concurrent_runs: 2", "max_concurrent_runs: 1"))
    generate(upstream, dt.date.fromisoformat(DAYS[0]), len(DAYS), scale=0.001, seed=5, progress=False)
    env = {"DAGSTER_HOME": str(home), "SALESPIPE_LAKE": str(lake),
           "SALESPIPE_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
           "SALESPIPE_PARTITION_START": WEEK, "SALESPIPE_PARTITION_END": "2024-01-14",
           "SALESPIPE_SENSOR_INTERVAL": "2", "SUPERSET_URL": "", "SALESPIPE_MAX_RUNTIME": str(MAX_RUNTIME)}
    log = tmp_path / "daemon.log"
    with dg.DagsterInstance.from_config(str(home)):
        pass  # create the storage before the daemon opens it too
    daemon = start([str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(PROJECT_ROOT / "workspace.yaml")],
                   env=env, log=log, cwd=str(PROJECT_ROOT))
    processes: list[int] = []
    try:
        # 1. the day's run worker is killed outright: the run is marked failed within seconds
        restart._land(upstream, lake, DAYS[0])  # its run and its week's run queue one behind the other
        killed, pid = restart._wait(lambda: _started_worker(home, set()), "a started run", daemon, log)
        processes += _descendants(daemon.pid)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        restart._wait(lambda: _status(home, killed.run_id) == dg.DagsterRunStatus.FAILURE,
                      "the killed run marked failed", daemon, log, timeout=60)
        assert time.time() - killed_at < 30
        assert "was terminated by signal 9" in _messages(home, killed.run_id)

        # 2. the next run of the chain starts and hangs in Spark (its JVM stopped: every Spark call
        #    waits); it is terminated after its max_runtime, while the next day's runs wait behind it
        hung, pid = restart._wait(lambda: _started_worker(home, {killed.run_id}), "the next run", daemon, log,
                                  timeout=300)
        assert hung.tags["dagster/max_runtime"] == str(MAX_RUNTIME)

        def spark_jvm():
            assert _status(home, hung.run_id) == dg.DagsterRunStatus.STARTED, "the run ended before its Spark began"
            # the driver JVM, not a short-lived java before it (`java -version`, spark-class's launcher)
            return [p for p, cmd in _cmdlines(_descendants(pid)).items()
                    if cmd and "java" in cmd.split()[0] and DRIVER in cmd and LAUNCHER not in cmd]
        jvms = restart._wait(spark_jvm, "the run's Spark JVM", daemon, log, timeout=MAX_RUNTIME)
        processes += _descendants(daemon.pid)
        for jvm in jvms:
            os.kill(jvm, signal.SIGSTOP)
        restart._land(upstream, lake, DAYS[1])
        # canceled when the worker still answers the termination request, failed when it does not
        restart._wait(lambda: _status(home, hung.run_id) in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE),
                      "the hung run terminated", daemon, log, timeout=MAX_RUNTIME + 120)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            record = instance.get_run_record_by_id(hung.run_id)
        took = record.end_time - record.start_time
        assert MAX_RUNTIME <= took <= MAX_RUNTIME + POLL + 30, took
        assert f"maximum runtime of {MAX_RUNTIME} seconds" in _messages(home, hung.run_id)

        # 3. the slot is free: a run queued behind the hung one starts
        def next_started():
            return [r for r in _week_runs(home) if r.run_id not in {killed.run_id, hung.run_id}
                    and r.status not in (dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED)]
        restart._wait(next_started, "a run after the hung one", daemon, log, timeout=180)
    finally:
        processes += _descendants(daemon.pid) if daemon.poll() is None else []
        stop(daemon)
        for pid in processes:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# --- salespipe dev --code-server -----------------------------------------------------------

def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        payload = json.loads(resp.read())
    assert not payload.get("errors"), payload["errors"]
    return payload["data"]


_LOCATION = """query { workspaceOrError { ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on RepositoryLocation { repositories { name
    sensors { name sensorState { status } } jobs { name } } } } } } } }"""
_RELOAD = """mutation { reloadRepositoryLocation(repositoryLocationName: "salespipe") { __typename
  ... on WorkspaceLocationEntry { loadStatus } } }"""


def _cmdlines(pids: list[int]) -> dict[int, str]:
    out = {}
    for pid in pids:
        try:
            out[pid] = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            pass
    return out


def test_dev_with_a_code_server_on_postgres_reloads_code_without_restarting_the_daemon(postgres, pg_env, tmp_path):
    home, port, grpc_port = tmp_path / "home", free_port(), free_port()
    salespipe = str(Path(sys.executable).parent / "salespipe")
    log = tmp_path / "dev.log"
    # no run here: a placeholder Spark Connect URL keeps salespipe dev from starting a Spark server
    proc = start([salespipe, "dev", "--lake", str(tmp_path / "lake"), "--port", str(port), "--code-server", str(grpc_port)],
                 env={"DAGSTER_HOME": str(home), "SALESPIPE_SPARK_REMOTE": "sc://127.0.0.1:1", "SUPERSET_URL": ""}, log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/server_info", timeout=420, proc=proc)

        def location():
            entries = _graphql(url, _LOCATION)["workspaceOrError"]["locationEntries"]
            entry = next(e for e in entries if e["name"] == "salespipe")
            return entry if entry["loadStatus"] == "LOADED" else None
        entry = restart._wait(location, "the code location", proc, log, timeout=420)
        repo = entry["locationOrLoadError"]["repositories"][0]
        assert {"daily_job", "weekly_job"} <= {j["name"] for j in repo["jobs"]}
        assert "landing_sensor" in {s["name"] for s in repo["sensors"]}
        assert (home / "workspace-code-server.yaml").read_text().count(f"port: {grpc_port}") == 1

        processes = _cmdlines(_descendants(proc.pid))
        daemons = [pid for pid, cmd in processes.items() if "dagster-daemon" in cmd or "_daemon" in cmd]
        servers = [pid for pid, cmd in processes.items() if "code-server start" in cmd]
        assert len(daemons) == 1 and len(servers) == 1, processes
        inner_before = set(_descendants(servers[0]))
        assert inner_before  # the code server's process that loads the code

        assert _graphql(url, _RELOAD)["reloadRepositoryLocation"]["__typename"] == "WorkspaceLocationEntry"
        restart._wait(location, "the reloaded code location", proc, log, timeout=420)
        # the code was loaded again, in a new process of the code server (the old one leaves later)
        restart._wait(lambda: set(_descendants(servers[0])) - inner_before, "a new code process", proc, log, timeout=300)
        after = _cmdlines(_descendants(proc.pid))
        assert daemons[0] in after and servers[0] in after  # the daemon and the code server stayed up
        # the webserver reads the postgres instance (its run storage answers from Postgres)
        assert _sqlite_files(home) == []
    finally:
        stop(proc)
