"""The Snowflake warehouse and source export against fakesnow standing in for Snowflake.

fakesnow runs as a server (``python -m fakesnow -s`` on 127.0.0.1, stopped by its PID) and
the real Snowflake connector talks to it over HTTP through dagster-snowflake's
``SnowflakeResource``; fakesnow executes the SQL on DuckDB. The lake is real Parquet written
by the Spark steps (see ``tests/test_glue_catalog.build_small_lake``); expected rows are read
from that Parquet by DuckDB.

Where fakesnow falls short, and what is done instead:
- ``COPY ... FILES = (...)`` from an *internal* stage fails in fakesnow, so internal-stage
  loads PUT into a fresh per-load path and copy that whole path (this is also what keeps
  stale uploads out of a load on real Snowflake).
- fakesnow cannot reach S3, so the external-stage path is exercised with a ``file://`` stage
  URL over the local lake (fakesnow reads it with DuckDB); the S3 stage DDL is checked as
  executed SQL, without loading.
- fakesnow cannot unload (``COPY INTO @stage``): the export's day query runs on fakesnow
  against seeded source tables, its unload statement is checked parsed, not executed.
  fakesnow also drops an alias that differs from its column only in case, so the export's
  header names are compared case-blind on fakesnow and as quoted aliases in the SQL.
- fakesnow's ``CREATE TABLE IF NOT EXISTS`` on an existing table forgets the table's load
  history; the warehouse only creates a table it does not find, so ``FORCE`` stays tested.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import sqlglot
from dagster_snowflake import SnowflakeResource
from sqlglot import exp

from salespipe_assets.assets.source_export import SnowflakeSourceExport
from salespipe_assets.datagen import generate
from salespipe_assets.resources.lake import LocalLake
from salespipe_assets.resources.snowflake_warehouse import (
    SnowflakeWarehouse,
    table_columns,
)
from spark_steps.contract import CONTRACT, SNAPSHOT_TABLES
from spark_steps.fact import FACT_COLUMNS, FACT_SCHEMA
from tests.servers import free_port, start, stop
from tests.test_glue_catalog import WEEK1, WEEK2, small_lake

FACT = "curated/weekly_sales_inventory"


@contextmanager
def fakesnow_server():
    """A fakesnow server process on 127.0.0.1; yields its port."""
    port = free_port()
    proc = start([sys.executable, "-m", "fakesnow", "-s", "--host", "127.0.0.1", "-p", str(port)])
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"fakesnow server exited with {proc.returncode}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("fakesnow server did not start within 60 s")
                time.sleep(0.2)
        yield port
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def fakesnow_port():
    with fakesnow_server() as port:
        yield port


@pytest.fixture()
def snowflake(fakesnow_port, request) -> SnowflakeResource:
    """A connection to the fakesnow server, in a schema of this test's own."""
    return SnowflakeResource(
        account="fakesnow", user="fake", password="snow", database="SALESPIPE",
        schema=request.node.name.upper()[:200],  # the field is schema_, but only its alias reaches the connector
        additional_snowflake_connection_args={"host": "127.0.0.1", "port": fakesnow_port, "protocol": "http",
                                              "network_timeout": 10},
    )


@pytest.fixture()
def lake(spark, tmp_path_factory, tmp_path) -> LocalLake:
    """A private copy of the Spark-built lake (tests change it)."""
    shutil.copytree(small_lake(spark, tmp_path_factory), tmp_path / "lake")
    return LocalLake(root=str(tmp_path / "lake"))


def sql(resource: SnowflakeResource, text: str) -> list[tuple]:
    with resource.get_connection() as conn, conn.cursor() as cur:
        cur.execute(text)
        return cur.fetchall()


def warehouse_fact(resource, week: str | None = None) -> list[tuple]:
    where = f" WHERE week_start = DATE '{week}'" if week else ""
    return sql(resource, f"SELECT {', '.join(FACT_COLUMNS)} FROM weekly_sales_inventory{where} "
                         "ORDER BY week_start, store_key, prod_key")


def curated_fact(root: str | Path, week: str | None = None) -> list[tuple]:
    part = f"week_start={week}" if week else "*"
    return duckdb.sql(
        f"SELECT {', '.join(FACT_COLUMNS)} FROM read_parquet('{root}/{FACT}/{part}/*.parquet', "
        "hive_partitioning = true) ORDER BY week_start, store_key, prod_key").fetchall()


def curated_dimension(root: str | Path, table: str) -> list[tuple]:
    cols = CONTRACT[table].column_names
    return duckdb.sql(f"SELECT {', '.join(cols)} FROM read_parquet('{root}/curated/{table}/*.parquet') "
                      f"ORDER BY {cols[0]}").fetchall()


def test_objects_are_created_once_with_the_contract_types(snowflake, lake):
    wh = SnowflakeWarehouse(snowflake=snowflake)
    for _ in range(2):  # the second pass must find everything in place and change nothing
        with wh._cursor() as cur:
            wh.ensure_objects(cur, lake, ["weekly_sales_inventory", "store"])

    stages = sql(snowflake, "SHOW STAGES")
    assert [(s[1], s[4], s[10]) for s in stages] == [("SALESPIPE_LAKE", "", "INTERNAL")]
    columns = sql(snowflake, "SELECT table_name, column_name, data_type, numeric_precision, numeric_scale "
                             "FROM information_schema.columns WHERE table_schema = CURRENT_SCHEMA() "
                             "ORDER BY table_name, ordinal_position")
    fact = [(c, t, p, s) for table, c, t, p, s in columns if table == "WEEKLY_SALES_INVENTORY"]
    expected = {"date": ("DATE", None, None), "int": ("NUMBER", 38, 0), "double": ("FLOAT", None, None),
                "decimal(38,2)": ("NUMBER", 38, 2)}
    assert fact == [(n.upper(), *expected[t]) for n, t in FACT_SCHEMA]
    store = {c: (t, p, s) for table, c, t, p, s in columns if table == "STORE"}
    assert len(store) == len(CONTRACT["store"].columns)
    assert store["FRNCHS_FLG"] == ("BOOLEAN", None, None)
    assert store["STORE_SIZE"] == ("NUMBER", 19, 3)
    assert store["CITY"][0] == "TEXT"


def test_a_loaded_week_equals_its_curated_parquet(snowflake, lake):
    wh = SnowflakeWarehouse(snowflake=snowflake)
    loaded = wh.load_fact_week(lake, WEEK1)

    expected = curated_fact(lake.root, WEEK1)
    assert expected and warehouse_fact(snowflake) == expected
    assert loaded["rows"] == loaded["rows_loaded"] == len(expected) == lake.read_manifest(
        f"{FACT}/week_start={WEEK1}")["row_count"]
    assert [r["status"] for r in loaded["copy_result"]] == ["LOADED"]
    assert loaded["copy_result"][0]["rows_loaded"] == len(expected)


def test_loading_the_same_week_twice_leaves_no_duplicates_and_other_weeks_alone(snowflake, lake):
    wh = SnowflakeWarehouse(snowflake=snowflake)
    wh.load_fact_week(lake, WEEK1)
    wh.load_fact_week(lake, WEEK2)
    again = wh.load_fact_week(lake, WEEK1)

    assert again["rows"] == len(curated_fact(lake.root, WEEK1))
    assert warehouse_fact(snowflake) == curated_fact(lake.root)


def _republish_with_a_broken_file(lake: LocalLake, week: str) -> None:
    """The week's Parquet cut to its first row, plus a file that is not Parquet, loaded after it."""
    part = Path(lake.fs.path(f"{FACT}/week_start={week}"))
    good = next(part.glob("*.parquet"))
    duckdb.sql(f"COPY (SELECT * FROM read_parquet('{good}') LIMIT 1) TO '{part}/part-00000-v2.parquet' "
               "(FORMAT parquet)")
    good.unlink()
    (part / "part-99999-broken.parquet").write_bytes(b"this is not a Parquet file")


def test_a_failure_in_the_middle_of_a_load_leaves_the_previous_week_intact(snowflake, lake):
    wh = SnowflakeWarehouse(snowflake=snowflake)
    wh.load_fact_week(lake, WEEK1)
    before = warehouse_fact(snowflake)
    assert len(before) > 1

    _republish_with_a_broken_file(lake, WEEK1)
    with pytest.raises(Exception):
        wh.load_fact_week(lake, WEEK1)  # the first file is copied, the second one fails

    assert warehouse_fact(snowflake) == before
    (Path(lake.fs.path(f"{FACT}/week_start={WEEK1}")) / "part-99999-broken.parquet").unlink()
    assert wh.load_fact_week(lake, WEEK1)["rows"] == 1


def test_dimensions_are_replaced_from_their_snapshot(snowflake, lake):
    wh = SnowflakeWarehouse(snowflake=snowflake)
    for _ in range(2):
        for table in SNAPSHOT_TABLES:
            loaded = wh.replace_dimension(lake, table)
            assert loaded["rows"] == len(curated_dimension(lake.root, table))
    for table in SNAPSHOT_TABLES:
        cols = CONTRACT[table].column_names
        assert sql(snowflake, f"SELECT {', '.join(cols)} FROM {table} ORDER BY {cols[0]}") \
            == curated_dimension(lake.root, table)


def test_an_external_stage_loads_exactly_the_partition_files(snowflake, lake):
    """``file://`` stands in for the S3 URL: fakesnow reads external stages with DuckDB."""
    wh = SnowflakeWarehouse(snowflake=snowflake, external_stage_url=f"file://{lake.root}/")
    first = wh.load_fact_week(lake, WEEK2)
    # Snowflake skips files it has loaded before unless FORCE: a reload must not empty the week
    second = wh.load_fact_week(lake, WEEK2)

    assert first["stage_location"] == second["stage_location"] == f"@salespipe_lake/{FACT}/week_start={WEEK2}/"
    assert [r["status"] for r in second["copy_result"]] == ["LOADED"]
    assert warehouse_fact(snowflake) == curated_fact(lake.root, WEEK2)
    stage = sql(snowflake, "SHOW STAGES")[0]
    assert (stage[4], stage[10]) == (f"file://{lake.root}/", "EXTERNAL")


def test_a_stage_pointing_elsewhere_is_replaced(snowflake, lake):
    elsewhere = SnowflakeWarehouse(snowflake=snowflake, external_stage_url="file:///somewhere/else/")
    with elsewhere._cursor() as cur:
        elsewhere.ensure_objects(cur, lake, [])
    assert [s[4] for s in sql(snowflake, "SHOW STAGES")] == ["file:///somewhere/else/"]

    SnowflakeWarehouse(snowflake=snowflake, external_stage_url=f"file://{lake.root}/").load_fact_week(lake, WEEK1)

    assert [s[4] for s in sql(snowflake, "SHOW STAGES")] == [f"file://{lake.root}/"]
    assert warehouse_fact(snowflake) == curated_fact(lake.root, WEEK1)


def test_an_s3_lake_gets_an_external_stage_with_its_storage_integration(snowflake):
    s3_lake = LocalLake(root="s3://bucket/prefix")
    wh = SnowflakeWarehouse(snowflake=snowflake)
    with pytest.raises(ValueError, match="SNOWFLAKE_STORAGE_INTEGRATION"):
        with wh._cursor() as cur:
            wh.ensure_objects(cur, s3_lake, [])
    wh = SnowflakeWarehouse(snowflake=snowflake, storage_integration="salespipe_s3")
    with wh._cursor() as cur:
        wh.ensure_objects(cur, s3_lake, [])
    stage = sql(snowflake, "SHOW STAGES")[0]
    assert (stage[1], stage[4], stage[10]) == ("SALESPIPE_LAKE", "s3://bucket/prefix/", "EXTERNAL")


def test_a_column_the_table_lacks_is_added_before_loading(snowflake, lake):
    old = [(n, t) for n, t in FACT_SCHEMA if n not in ("weeks_of_supply", "no_stock_impact")]
    types = {"date": "DATE", "int": "INTEGER", "double": "FLOAT", "decimal(38,2)": "NUMBER(38,2)"}
    sql(snowflake, "CREATE TABLE weekly_sales_inventory (" + ", ".join(f"{n} {types[t]}" for n, t in old) + ")")

    SnowflakeWarehouse(snowflake=snowflake).load_fact_week(lake, WEEK1)

    assert warehouse_fact(snowflake) == curated_fact(lake.root, WEEK1)


# -- the whole pipeline -------------------------------------------------------------------------

@pytest.mark.slow
def test_salespipe_run_with_the_snowflake_warehouse_on_a_local_lake(fakesnow_port, tmp_path):
    """``salespipe run --warehouse snowflake`` as a person runs it (a real subprocess: its own
    Spark local mode, its own Dagster instance) on a generated local lake, with the fakesnow
    server standing in for Snowflake through the SNOWFLAKE_* variables (read with
    ``dg.EnvVar``). The tables equal the curated Parquet; a second run changes nothing."""
    secret = "not-in-any-metadata-7f3a"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALESPIPE_", "SNOWFLAKE_"))}
    env.update({"SNOWFLAKE_ACCOUNT": "fakesnow", "SNOWFLAKE_USER": "fake", "SNOWFLAKE_PASSWORD": secret,
                "SNOWFLAKE_DATABASE": "SALESPIPE", "SNOWFLAKE_SCHEMA": "CLI",
                "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(fakesnow_port),
                "SNOWFLAKE_PROTOCOL": "http", "DAGSTER_HOME": str(tmp_path / "home")})
    lake = tmp_path / "lake"
    generate(lake, dt.date(2024, 1, 13), 2, scale=0.002, seed=5, progress=False)  # Sat, Sun: two weeks
    command = [str(Path(sys.executable).parent / "salespipe"), "run", "--lake", str(lake),
               "--warehouse", "snowflake", "--quiet"]
    check = SnowflakeResource(account="fakesnow", user="fake", password="snow", database="SALESPIPE",
                              schema="CLI", additional_snowflake_connection_args={
                                  "host": "127.0.0.1", "port": fakesnow_port, "protocol": "http"})

    def warehouse_state():
        return warehouse_fact(check), {t: sql(check, f"SELECT {', '.join(CONTRACT[t].column_names)} FROM {t} "
                                                     f"ORDER BY {CONTRACT[t].column_names[0]}")
                                       for t in SNAPSHOT_TABLES}

    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "days processed: 2 (2 ok, 0 failed)" in first.stdout and "weeks built: 2 (2 ok)" in first.stdout
    fact, dimensions = warehouse_state()
    assert fact and fact == curated_fact(lake)
    assert dimensions == {t: curated_dimension(lake, t) for t in SNAPSHOT_TABLES}
    assert not (lake / "warehouse.duckdb").exists()  # the warehouse really was Snowflake

    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        event = instance.get_latest_materialization_event(
            dg.AssetKey(["warehouse", "weekly_sales_inventory"]))
        loaded = {k: v.value for k, v in event.asset_materialization.metadata.items()}
        assert loaded["copy_result"][0]["status"] == "LOADED"
        assert loaded["rows_loaded"] == loaded["dagster/row_count"] == len(curated_fact(lake, event.dagster_event.partition))
        everything = [instance.all_logs(run.run_id) for run in instance.get_runs()]
    assert secret not in first.stdout + first.stderr + repr(everything)

    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "days processed: 0" in second.stdout and "unchanged: 2" in second.stdout
    assert warehouse_state() == (fact, dimensions)


# -- the source export -----------------------------------------------------------------------

def _seed_source(snowflake) -> None:
    day1, day2 = "2024-01-08", "2024-01-09"
    for table in ("sales", "store"):
        columns = ", ".join(f"{n} {t}" for n, t in table_columns(table))
        sql(snowflake, f"CREATE TABLE SALESPIPE.SOURCE.{table} ({columns})")
    sql(snowflake, "INSERT INTO SALESPIPE.SOURCE.sales VALUES "
                   f"(1, 10, 100, '{day1}', 3600, 1, 5, 5, 0, 3, 2, 0.5), "
                   f"(2, 20, 100, '{day2}', 60, 2, 1, 2, 0, 1, 1, NULL)")
    sql(snowflake, "INSERT INTO SALESPIPE.SOURCE.store (store_key, store_desc, frnchs_flg) "
                   "VALUES (100, 'A', TRUE), (200, 'B', NULL)")


def test_the_export_selects_one_day_with_the_contract_header(snowflake):
    sql(snowflake, "CREATE SCHEMA IF NOT EXISTS SALESPIPE.SOURCE")
    _seed_source(snowflake)
    export = SnowflakeSourceExport(snowflake=snowflake, source_database="SALESPIPE", source_schema="SOURCE")

    with snowflake.get_connection() as conn, conn.cursor() as cur:
        cur.execute(export.day_query("sales", "2024-01-08"))
        # fakesnow (DuckDB) drops an alias that differs from its column only in case, so the
        # names are compared case-blind here and the quoted lower-case aliases checked as SQL below
        assert ",".join(d.name.lower() for d in cur.description) == CONTRACT["sales"].header
        assert [r[0] for r in cur.fetchall()] == [1]
        cur.execute(export.day_query("store", "2024-01-08"))  # snapshots: every row, whatever the day
        assert ",".join(d.name.lower() for d in cur.description) == CONTRACT["store"].header
        assert sorted(r[0] for r in cur.fetchall()) == [100, 200]
    select = sqlglot.parse_one(export.day_query("sales", "2024-01-08"), read="snowflake")
    assert [(e.args["alias"].name, e.args["alias"].quoted) for e in select.expressions] == \
        [(c, True) for c in CONTRACT["sales"].column_names]


def test_the_unload_statement_writes_one_gzip_csv_with_header_per_table_and_day(snowflake):
    export = SnowflakeSourceExport(snowflake=snowflake, source_database="SRC", source_schema="PUBLIC",
                                   storage_integration="salespipe_s3")
    statement = sqlglot.parse_one(export.unload_sql("inventory", "2024-01-08"), read="snowflake")

    assert isinstance(statement, exp.Copy)
    assert statement.this.sql(dialect="snowflake") == "@salespipe_raw/inventory_2024-01-08.csv.gz"
    options = {p.this.name: p for p in statement.args["params"]}
    assert {k: options[k].expression.sql() for k in ("HEADER", "SINGLE", "OVERWRITE")} == \
        {"HEADER": "TRUE", "SINGLE": "TRUE", "OVERWRITE": "TRUE"}
    assert options["FILE_FORMAT"].sql(dialect="snowflake") == "FILE_FORMAT = (FORMAT_NAME='salespipe_raw_csv')"
    assert "WHERE cal_dt = CAST('2024-01-08' AS DATE)" in statement.args["files"][0].sql(dialect="snowflake")

    s3_lake = LocalLake(root="s3://bucket/prefix")
    for ddl in export.setup_sql(s3_lake) * 2:  # idempotent
        sql(snowflake, ddl)
    assert "COMPRESSION = GZIP" in export.setup_sql(s3_lake)[0]
    stage = sql(snowflake, "SHOW STAGES")[0]
    assert (stage[1], stage[4], stage[10]) == ("SALESPIPE_RAW", "s3://bucket/prefix/raw/", "EXTERNAL")
    with pytest.raises(ValueError, match="S3 raw zone"):
        export.setup_sql(LocalLake(root="/tmp/lake"))
