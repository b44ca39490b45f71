"""The same dashboard on a Snowflake warehouse, chosen by configuration only
(SALESPIPE_BI_WAREHOUSE_URI + SALESPIPE_BI_WAREHOUSE_SCHEMA + connect args).

fakesnow stands in for Snowflake: a fakesnow server process on 127.0.0.1 (stopped by its
PID) speaks Snowflake's wire protocol to snowflake-sqlalchemy inside Superset and runs the
SQL on DuckDB. The session's Superset is re-bootstrapped onto it, every chart's data is
compared with the DuckDB numbers, and it is bootstrapped back onto the DuckDB file.
"""

from __future__ import annotations

import json
import socket
import sys
import time

import duckdb
import pytest

from salespipe_assets import bi
from tests.servers import free_port, start, stop
from tests_bi.expected import EXPECTED_SQL, chart_pairs

TABLES = ("weekly_sales_inventory", "store", "product", "calendar")


@pytest.fixture(scope="module")
def fakesnow_port():
    port = free_port()
    proc = start([sys.executable, "-m", "fakesnow", "-s", "--host", "127.0.0.1", "-p", str(port)])
    try:
        deadline = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("fakesnow server did not start") from None
                time.sleep(0.2)
        if proc.poll() is not None:  # the port answered, but not our server
            raise RuntimeError(f"fakesnow server exited with {proc.returncode}")
        yield port
    finally:
        stop(proc)


def _load_into_snowflake(port: int, warehouse) -> None:
    """Copy the warehouse tables into SALESPIPE.BI (what the Snowflake warehouse load produces)."""
    import snowflake.connector

    with snowflake.connector.connect(account="fakesnow", user="fake", password="snow", host="127.0.0.1",
                                     port=port, protocol="http") as conn, conn.cursor() as cur, \
            duckdb.connect(str(warehouse), read_only=True) as src:
        cur.execute("CREATE DATABASE IF NOT EXISTS SALESPIPE")
        cur.execute("CREATE SCHEMA IF NOT EXISTS SALESPIPE.BI")
        cur.execute("USE SCHEMA SALESPIPE.BI")
        for table in TABLES:
            columns = src.execute(f"DESCRIBE {table}").fetchall()
            cur.execute(f"CREATE OR REPLACE TABLE {table} ({', '.join(f'{c[0]} {c[1]}' for c in columns)})")
            rows = src.execute(f"SELECT * FROM {table}").fetchall()
            cur.executemany(f"INSERT INTO {table} VALUES ({', '.join(['%s'] * len(columns))})", rows)
            assert cur.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == len(rows), table


@pytest.fixture(scope="module")
def superset_on_snowflake(superset, warehouse, fakesnow_port):
    _load_into_snowflake(fakesnow_port, warehouse)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SALESPIPE_BI_WAREHOUSE_URI", "snowflake://fake:snow@fakesnow/SALESPIPE/BI")
        mp.setenv("SALESPIPE_BI_WAREHOUSE_SCHEMA", "bi")
        mp.setenv("SALESPIPE_BI_WAREHOUSE_CONNECT_ARGS",
                  json.dumps({"host": "127.0.0.1", "port": fakesnow_port, "protocol": "http"}))
        bi.bootstrap(superset)
    try:
        yield superset
    finally:
        bi.bootstrap(superset, str(warehouse))  # back to DuckDB for the other tests


def test_the_warehouse_database_is_snowflake(superset_on_snowflake, api):
    databases = api.get("/api/v1/database/?q=(page_size:100)")["result"]
    assert [d["backend"] for d in databases] == ["snowflake"]


@pytest.mark.parametrize("name", sorted(EXPECTED_SQL))
def test_each_chart_returns_the_warehouse_numbers_from_snowflake(superset_on_snowflake, api, warehouse_sql, name):
    charts = {c["slice_name"]: c["id"] for c in api.get(f"/api/v1/dashboard/{bi.DASHBOARD_SLUG}/charts")["result"]}
    result = api.get(f"/api/v1/chart/{charts[name]}/data/")["result"][0]
    expected = dict(warehouse_sql(EXPECTED_SQL[name]))
    shown = chart_pairs(name, result["data"])
    assert shown
    for label, value in shown:
        assert value == pytest.approx(expected[label], rel=1e-9), label
