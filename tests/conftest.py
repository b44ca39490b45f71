"""Shared fixtures: one real local SparkSession for the whole test session, one real
Spark Connect server for the whole test session (every xdist worker), and helpers that
write hand-built landing files."""

from __future__ import annotations

import fcntl
import gzip
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from spark_steps.contract import CONTRACT
from tests.dev_server import dev_server, stop_session_server  # noqa: F401  (one `salespipe dev` for the session)

# The dashboard asset refreshes Superset when one answers at SUPERSET_URL: never a
# developer's running `make bi` from the tests (tests_bi/ start their own).
os.environ["SUPERSET_URL"] = ""
# The tests write landing files right before they run them: no quiet period for files still
# being written, except where it is the subject (LocalLake(settle_seconds=...), the daemon test).
os.environ.setdefault("SALESPIPE_SETTLE_SECONDS", "0")


# The groups that take longest (minutes, setup included, on a 2-core machine), first:
# `make test` passes --no-loadscope-reorder, so xdist hands groups out in this order and a
# long one does not start last while the other worker runs out of work. Ranked by the
# durations a `make test` run printed (--durations), setup included.
SLOWEST_FIRST = ["tests.test_daemon_restart", "dev_server", "tests.test_faults", "tests.test_postgres_instance",
                 "tests.test_spark_cluster", "tests.test_cli_hostile", "tests.test_pipeline_e2e",
                 "tests.test_spark_connect", "tests.test_cli", "tests.test_backfill_range", "tests.test_fact_rules",
                 "tests.test_ui_freshness", "tests.test_lambda_handler", "tests.test_staging_rules",
                 "tests.test_snowflake_warehouse", "tests.test_secrets", "tests.test_emr_runtime",
                 "tests.test_landing_sensor", "tests.test_hostile_csv", "tests.test_glue_catalog",
                 "tests.test_instance_profiles", "tests.test_staging_multi", "tests.test_java_home",
                 "tests.test_blocking_checks"]


def _group(item) -> str:
    return "dev_server" if "dev_server" in item.fixturenames else item.module.__name__


@pytest.hookimpl(tryfirst=True)  # before xdist reads the groups into the node ids
def pytest_collection_modifyitems(items):
    """Under pytest-xdist (``make test`` uses two workers), a module's tests stay on one
    worker so its module fixtures (servers, built lakes) are made once; the tests that
    share the session's ``salespipe dev`` server all go to one worker too. The sort is
    stable: tests keep their order within a group."""
    for item in items:
        item.add_marker(pytest.mark.xdist_group(_group(item)))
    rank = {group: i for i, group in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(_group(item), len(rank)))


def pytest_runtest_teardown(item, nextitem):
    if _group(item) == "dev_server" and (nextitem is None or _group(nextitem) != "dev_server"):
        stop_session_server()


TEST_SPARK_CONF = {"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": "2"}
# The tests that start run processes (``salespipe dev``, the daemon, a webserver for the
# Lambda handler, ``salespipe run``): their runs use the session's Connect server through
# the environment, instead of a cold JVM each.
USE_CONNECT_SERVER = {"tests.test_dev_e2e", "tests.test_ui_browser", "tests.test_daemon_restart",
                      "tests.test_lambda_handler", "tests.test_cli", "tests.test_cli_hostile",
                      "tests.test_snowflake_warehouse"}
# The Spark rule tests run on both kinds of session: spark_steps must not care.
BOTH_SESSION_KINDS = {"tests.test_staging_rules", "tests.test_fact_rules"}
_SERVER_DIR = "SALESPIPE_TEST_SPARK_DIR"  # shared by the controller and its xdist workers


def pytest_configure(config):
    # The controller (or a run without xdist) owns the server's directory; the workers it
    # starts inherit the variable, and the first that needs the server starts it there.
    if not hasattr(config, "workerinput") and _SERVER_DIR not in os.environ:
        os.environ[_SERVER_DIR] = tempfile.mkdtemp(prefix="salespipe-test-spark-")
        config._salespipe_spark_dir = os.environ[_SERVER_DIR]


def pytest_unconfigure(config):
    folder = getattr(config, "_salespipe_spark_dir", None)
    if folder:
        from salespipe_assets import spark_server

        spark_server.stop(folder)
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_SERVER_DIR, None)


@pytest.fixture(scope="session")
def spark_remote() -> str:
    """The URL of the session's one Spark Connect server (started by the first worker that
    asks, under a file lock; stopped by the controller at the end)."""
    from salespipe_assets import spark_server

    folder = Path(os.environ[_SERVER_DIR])
    with open(folder / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state = spark_server.running_server(folder)
        if state is None:
            _, state = spark_server.start(folder, master="local[2]", driver_memory="3g")
    return state.url


@pytest.fixture(scope="module", autouse=True)
def _runs_use_the_connect_server(request):
    if request.module.__name__ not in USE_CONNECT_SERVER:
        yield
        return
    url = request.getfixturevalue("spark_remote")
    # SPARK_REMOTE too: some tests pass their children only the non-SALESPIPE_ variables.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SALESPIPE_SPARK_REMOTE", url)
        patch.setenv("SPARK_REMOTE", url)
        yield


def pytest_generate_tests(metafunc):
    if "spark" in metafunc.fixturenames and metafunc.module.__name__ in BOTH_SESSION_KINDS:
        metafunc.parametrize("spark", ["classic", "connect"], indirect=True, scope="module")


@pytest.fixture(scope="session")
def classic_spark():
    from salespipe_assets.resources.spark import SparkRuntime

    # The same session the Dagster resource will get (getOrCreate): one JVM per test run.
    session = SparkRuntime(conf=TEST_SPARK_CONF).session()
    yield session
    session.stop()


@pytest.fixture(scope="session")
def connect_spark(spark_remote):
    from salespipe_assets.resources.spark import SparkRuntime

    session = SparkRuntime(remote=spark_remote, conf=TEST_SPARK_CONF).session()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def spark(request):
    """A classic local SparkSession, or (parametrized: BOTH_SESSION_KINDS) a Spark Connect one."""
    from spark_steps.runtime import use_session_kind

    session = request.getfixturevalue(f"{getattr(request, 'param', 'classic')}_spark")
    use_session_kind(session)
    yield session
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


@pytest.fixture(autouse=True)
def _spark_functions_match_the_session(request):
    """pyspark picks classic or Connect functions by a process-wide flag: each test gets the
    kind of its ``spark``, and no child process inherits a Connect flag."""
    from spark_steps.runtime import use_session_kind

    if "spark" in request.fixturenames:
        use_session_kind(request.getfixturevalue("spark"))
    else:
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    yield
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def write_landing(lake: Path, table: str, day: str, rows: list[str], *, header: str | None = None,
                  gz: bool = False) -> str:
    """Write raw/<table>_<day>.csv[.gz] with the contract header (or ``header``) and rows;
    return the path relative to the lake."""
    raw = lake / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    name = f"{table}_{day}.csv" + (".gz" if gz else "")
    text = (CONTRACT[table].header if header is None else header) + "\n" + "".join(r + "\n" for r in rows)
    data = text.encode("utf-8")
    (raw / name).write_bytes(gzip.compress(data) if gz else data)
    return f"raw/{name}"


def sales_row(trans_id, prod=10, store=100, day="2024-01-08", qty="1.00", amt="5.00", cost="3.00",
              price="5.00", time="3600") -> str:
    margin = "" if amt in ("", None) or cost in ("", None) else "0.00"
    return f"{trans_id},{prod},{store},{day},{time},{qty},{price},{amt},0.00,{cost},{margin},0.50"


def inventory_row(day="2024-01-08", store=100, prod=10, on_hand="5.00", on_order="2.00", oos="0",
                  promo="false") -> str:
    return f"{day},{store},{prod},{on_hand},{on_order},{oos},0.00,{promo},"
