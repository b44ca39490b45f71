"""The warm Spark: a local Spark Connect server (``salespipe_assets/spark_server.py``) that the
runs share through the dagster-pyspark resource, each run on a Connect session of its own.

Real components throughout: the wheel's Spark Connect server JVM on 127.0.0.1, a real
``salespipe dev`` (its supervisor keeps the server up), real Dagster runs (``dg.materialize``
in this process and in a child process that is killed), the real ``stage_file`` step.
"""


import datetime as dt
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from salespipe_assets import spark_server
from salespipe_assets.datagen import generate
from salespipe_assets.resources.spark import SparkRuntime
from salespipe_assets.settings import PROJECT_ROOT
from tests.conftest import sales_row, write_landing
from tests.servers import free_port, start, stop

DAY = "2024-01-08"
# 127.0.0.1 as /proc/net/tcp writes it, and as /proc/net/tcp6 writes it (::ffff:127.0.0.1)
LOOPBACK = {"0100007F", "0000000000000000FFFF00000100007F"}
# A query that never ends on its own (its rows take days): the step that is killed (or whose
# server is killed). One task per core of the server's local[2], so the next run's tasks wait
# until it is given up. Each row sleeps 10 ms in the task's thread (java.lang.Thread.sleep by
# reflection) instead of computing: the tasks hold both slots without burning both cores of
# the test machine, and a cancelled task stops at once (the sleep is interrupted).
ENDLESS = ("SELECT count(*) FROM range(0, 1000000000000000, 1, 2) "
           "WHERE reflect('java.lang.Thread', 'sleep', CAST(10 AS BIGINT)) IS NOT NULL")


def _cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def _listening_addresses(port: int) -> set[str]:
    """Local addresses listening on ``port`` (/proc/net/tcp{,6}, state 0A = LISTEN)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


# --- the session's server ----------------------------------------------------------------
def test_the_server_listens_on_loopback_only_with_the_project_driver_settings(spark_remote):
    state = spark_server.read_state(os.environ["SALESPIPE_TEST_SPARK_DIR"])
    assert state.url == spark_remote and state.alive()
    assert _listening_addresses(state.port) and _listening_addresses(state.port) <= LOOPBACK  # 127.0.0.1 only
    argv = _cmdline(state.pid)
    assert argv[0].endswith("java") and spark_server.SERVER_CLASS in argv  # the JVM itself: its PID is ours
    assert "-Xmx3g" in argv
    assert "-XX:TieredStopAtLevel=1" in argv and "-XX:ReservedCodeCacheSize=240m" in argv
    assert any(a.startswith("-XX:SharedArchiveFile=") for a in argv) == (
        spark_server_archive() is not None and spark_server_archive().is_file())
    assert Path(state.log).is_file() and Path(state.log).parent == Path(os.environ["SALESPIPE_TEST_SPARK_DIR"]) / "spark-connect"


def spark_server_archive():
    from spark_steps.jvm_cds import archive_path

    return archive_path()


@dg.asset
def isolation_probe(context: dg.AssetExecutionContext, spark: SparkRuntime) -> dict:
    """Leaves a temporary view, a cached table and a SQL setting in its session; waits for the
    other run to do the same, then reads back what it sees."""
    session = spark.session()
    mark = int(context.run.tags["mark"])
    session.conf.set("spark.sql.shuffle.partitions", str(mark))
    session.range(mark).createOrReplaceTempView("probe")
    session.sql("CACHE TABLE probe")
    BARRIER.wait(timeout=120)  # both runs have written before either reads
    seen = {"rows": session.table("probe").count(), "partitions": session.conf.get("spark.sql.shuffle.partitions"),
            "cached": session.catalog.isCached("probe"), "session_id": session.session_id}
    BARRIER.wait(timeout=120)
    return seen


BARRIER = threading.Barrier(2)


def test_two_runs_at_once_have_their_own_sessions_and_leave_nothing_behind(spark_remote):
    resource = SparkRuntime(remote=spark_remote)
    results: dict[int, dict] = {}
    errors = []

    def run(mark: int) -> None:
        try:
            # disposed in the thread that made it (its SQLite connections belong to that thread)
            with dg.DagsterInstance.ephemeral() as instance:
                result = dg.materialize([isolation_probe], resources={"spark": resource},
                                        tags={"mark": str(mark)}, instance=instance)
                results[mark] = result.output_for_node("isolation_probe")
        except BaseException as exc:  # noqa: BLE001  # reported below
            errors.append(exc)
            BARRIER.abort()

    threads = [threading.Thread(target=run, args=(mark,)) for mark in (3, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    assert results[3] == {"rows": 3, "partitions": "3", "cached": True, "session_id": results[3]["session_id"]}
    assert results[7] == {"rows": 7, "partitions": "7", "cached": True, "session_id": results[7]["session_id"]}
    assert results[3]["session_id"] != results[7]["session_id"]
    # A later session sees neither view nor setting: the runs' sessions ended with them.
    later = SparkRuntime(remote=spark_remote).session()
    try:
        assert not later.catalog.tableExists("probe")
        assert later.conf.get("spark.sql.shuffle.partitions") not in ("3", "7")
    finally:
        later.stop()


@dg.asset
def staged_sales(context: dg.AssetExecutionContext, spark: SparkRuntime) -> dict:
    return spark.run_step(context, "stage_file", lake=context.run.tags["lake"], table="sales",
                          source=f"raw/sales_{DAY}.csv", business_date=DAY)


def _stage_a_day(url: str, lake: Path) -> dg.ExecuteInProcessResult:
    write_landing(lake, "sales", DAY, [sales_row(1), sales_row(2), "1,2,3"])
    return dg.materialize([staged_sales], resources={"spark": SparkRuntime(remote=url)}, tags={"lake": str(lake)},
                          instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)


def test_a_bad_file_on_connect_fails_its_step_with_the_steps_own_line(spark_remote, tmp_path):
    write_landing(tmp_path, "sales", DAY, [sales_row(1)], header="not,the,contract")
    result = dg.materialize([staged_sales], resources={"spark": SparkRuntime(remote=spark_remote)},
                            tags={"lake": str(tmp_path)}, instance=dg.DagsterInstance.ephemeral(), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error
    message = failure.message.strip()
    assert f"sales_{DAY}.csv" in message and "header" in message.lower()
    assert len(message.splitlines()) == 1, message


# --- faults on a server of its own, kept up by a real `salespipe dev` ----------------------------
SLOW_STEP = textwrap.dedent(f"""
    import sys, types
    module = types.ModuleType("spark_steps.endless")
    def run(spark, run_id, **args):
        print("STEP STARTED", flush=True)
        return {{"rows": spark.sql({ENDLESS!r}).collect()[0][0]}}
    module.run = run
    sys.modules["spark_steps.endless"] = module
""")
exec(SLOW_STEP)  # noqa: S102  # the same endless step in this process
STEP_STARTED = threading.Event()  # set when the endless step starts in this process


def _signalling_run(spark, run_id, _run=sys.modules["spark_steps.endless"].run, **args):
    STEP_STARTED.set()
    return _run(spark, run_id, **args)


sys.modules["spark_steps.endless"].run = _signalling_run


@dg.asset
def endless(context: dg.AssetExecutionContext, spark: SparkRuntime) -> dict:
    return spark.run_step(context, "endless")


KILLED_RUN = SLOW_STEP + textwrap.dedent("""
    import dagster as dg
    from salespipe_assets.resources.spark import SparkRuntime
    from tests.test_spark_connect import endless
    dg.materialize([endless], resources={"spark": SparkRuntime(remote=sys.argv[1])},
                   instance=dg.DagsterInstance.ephemeral())
""")


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    """``salespipe dev`` with no server given: it starts (and supervises) its own."""
    root = tmp_path_factory.mktemp("dev")
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if k not in ("SALESPIPE_SPARK_REMOTE", "SPARK_REMOTE")}
    env.update({"DAGSTER_HOME": str(home), "SUPERSET_URL": ""})
    proc = subprocess.Popen([str(Path(sys.executable).parent / "salespipe"), "dev", "--lake", str(root / "lake"),
                             "--port", str(free_port())], env=env, stdout=open(root / "dev.log", "wb"),
                            stderr=subprocess.STDOUT, preexec_fn=_own_group, cwd=str(PROJECT_ROOT))
    try:
        deadline = time.time() + spark_server.START_TIMEOUT
        while (state := spark_server.running_server(home)) is None:
            assert proc.poll() is None and time.time() < deadline, (root / "dev.log").read_text()[-3000:]
            time.sleep(0.5)
        yield proc, home, root
    finally:
        stop(proc)


def _own_group():
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_DFL)
    os.setsid()


def _wait_for_line(path: Path, text: str, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        assert time.time() < deadline, f"no {text!r} in {path}:\n{path.read_text(errors='replace')[-3000:]}"
        time.sleep(0.5)


def test_salespipe_dev_starts_the_server_on_loopback_next_to_dagster(dev):
    proc, home, _ = dev
    state = spark_server.running_server(home)
    assert _listening_addresses(state.port) and _listening_addresses(state.port) <= LOOPBACK
    assert spark_server.SERVER_CLASS in _cmdline(state.pid)
    assert Path(state.log) == home / "spark-connect" / "server.log"
    # the supervisor warms the new server (a tiny day staged and its week built elsewhere)
    _wait_for_line(home / "spark-connect" / "supervisor.log", "Spark Connect server warmed up in", timeout=300)


def test_a_run_killed_mid_step_leaves_the_server_usable_for_the_next_run(dev, tmp_path):
    _, home, _ = dev
    state = spark_server.running_server(home)
    log = tmp_path / "killed.log"
    with open(log, "wb") as out:
        child = subprocess.Popen([sys.executable, "-c", KILLED_RUN, state.url], stdout=out, stderr=subprocess.STDOUT,
                                 cwd=str(PROJECT_ROOT), preexec_fn=_own_group)
    try:
        _wait_for_line(log, "STEP STARTED")
        time.sleep(3)  # the endless query is running on the server
        os.killpg(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    started = time.time()
    result = _stage_a_day(state.url, tmp_path / "lake")
    assert result.success
    assert result.output_for_node("staged_sales")["rows_read"] == 3
    # the killed run's query was given up (10 s stream + 20 s detached timeout), not waited out
    # (Spark's default keeps it 5 minutes more); generous for a busy 2-core machine
    assert time.time() - started < 270
    assert spark_server.running_server(home).pid == state.pid  # the same server, never restarted


def test_a_killed_server_fails_the_step_in_one_line_and_dev_restarts_it(dev, tmp_path):
    proc, home, _ = dev
    state = spark_server.running_server(home)
    outcome = {}

    def run() -> None:
        with dg.DagsterInstance.ephemeral() as instance:  # disposed in this thread, which owns its SQLite
            outcome["result"] = dg.materialize([endless], resources={"spark": SparkRuntime(remote=state.url)},
                                               instance=instance, raise_on_error=False)

    STEP_STARTED.clear()
    runner = threading.Thread(target=run)
    runner.start()
    assert STEP_STARTED.wait(timeout=180), "the endless step did not start"
    time.sleep(3)  # the endless query is running on the server
    os.kill(state.pid, signal.SIGKILL)
    killed_at = time.time()
    runner.join(timeout=180)
    assert not runner.is_alive(), "the step did not notice that Spark was gone"
    assert time.time() - killed_at < 120
    result = outcome["result"]
    assert not result.success
    message = next(e for e in result.all_events if e.is_step_failure).step_failure_data.error.message.strip()
    assert "Spark is gone" in message
    assert len([line for line in message.splitlines() if line.strip()]) == 1, message
    assert state.url in message and "endless" in message

    deadline = time.time() + spark_server.START_TIMEOUT
    while (again := spark_server.running_server(home)) is None or again.pid == state.pid:
        assert proc.poll() is None and time.time() < deadline, "salespipe dev did not restart the server"
        time.sleep(0.5)
    assert again.url == state.url  # the same port: the runs' SALESPIPE_SPARK_REMOTE still holds
    result = _stage_a_day(again.url, tmp_path / "lake")
    assert result.success and result.output_for_node("staged_sales")["rows_read"] == 3


def test_stopping_salespipe_dev_stops_its_server(dev):
    proc, home, _ = dev
    pid = spark_server.running_server(home).pid
    stop(proc)
    deadline = time.time() + 30
    while spark_server.pid_alive(pid):
        assert time.time() < deadline, "the Spark Connect server outlived salespipe dev"
        time.sleep(0.5)
    assert not spark_server.state_file(home).exists()


# --- salespipe spark / salespipe run ----------------------------------------------------------
def _sessions_in(log: str) -> set[str]:
    return set(re.findall(r"sessionId: ([0-9a-f-]{36})", Path(log).read_text(errors="replace")))


def test_salespipe_spark_up_status_down_and_run_uses_the_server_that_is_up(tmp_path):
    salespipe = str(Path(sys.executable).parent / "salespipe")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESPIPE_") and k != "SPARK_REMOTE"}
    env.update({"DAGSTER_HOME": str(tmp_path / "home"), "SUPERSET_URL": ""})

    def cli(*args, timeout=300):
        return subprocess.run([salespipe, *args], env=env, capture_output=True, text=True, timeout=timeout)

    assert cli("spark", "status").returncode == 3
    up = cli("spark", "up", "--driver-memory", "1g")
    assert up.returncode == 0, up.stderr
    state = spark_server.running_server(tmp_path / "home")
    try:
        assert state is not None and state.url in up.stdout
        status = cli("spark", "status")
        assert status.returncode == 0 and state.url in status.stdout
        lake = tmp_path / "lake"
        generate(lake, dt.date(2024, 1, 8), 1, scale=0.001, seed=2, progress=False)
        before = _sessions_in(state.log)
        run = cli("run", "--lake", str(lake), "--quiet", timeout=600)
        assert run.returncode == 0, run.stdout + run.stderr
        assert "days processed: 1 (1 ok, 0 failed)" in run.stdout
        # the run's Spark steps ran on the server, in a session of their own
        assert len(_sessions_in(state.log) - before) >= 1
    finally:
        down = cli("spark", "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not spark_server.pid_alive(state.pid)
    assert cli("spark", "status").returncode == 3
