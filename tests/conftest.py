"""Shared fixtures: one real local SparkSession for the whole test session, and
helpers that write hand-built landing files."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

from spark_steps.contract import CONTRACT
from tests.dev_server import dev_server, stop_session_server  # noqa: F401  (one `salespipe dev` for the session)

# The dashboard asset refreshes Superset when one answers at SUPERSET_URL: never a
# developer's running `make bi` from the tests (tests_bi/ start their own).
os.environ["SUPERSET_URL"] = ""


# The groups that take longest (minutes, setup included, on a 2-core machine), first:
# `make test` passes --no-loadscope-reorder, so xdist hands groups out in this order and a
# long one does not start last while the other worker runs out of work.
SLOWEST_FIRST = ["dev_server", "tests.test_faults", "tests.test_daemon_restart", "tests.test_snowflake_warehouse",
                 "tests.test_spark_cluster", "tests.test_pipeline_e2e", "tests.test_lambda_handler", "tests.test_cli",
                 "tests.test_emr_runtime", "tests.test_secrets", "tests.test_glue_catalog"]


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


@pytest.fixture(scope="session")
def spark():
    from salespipe_assets.resources.spark import SparkRuntime

    # The same session the Dagster resource will get (getOrCreate): one JVM per test run.
    session = SparkRuntime(conf={"spark.driver.memory": "2g", "spark.sql.shuffle.partitions": "2"}).session()
    yield session
    session.stop()


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
