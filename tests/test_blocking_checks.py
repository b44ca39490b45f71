"""Blocking checks stop a bad week before the warehouse (issue 16, point 1).

A week is staged by the real Spark step from two landed files, then the staged sales
Parquet is rewritten with one negative ``sales_amt`` (staging itself would reject such a
row, so it is planted after the fact). The weekly job then runs on a real Dagster instance
with the in-process executor: the fact's ``non_negative_measures`` check fails, and because
it is blocking the catalog, warehouse and dashboard steps are skipped - nothing of the week
reaches the warehouse - and the run's events say which check blocked it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from salespipe_assets.assets.catalog import CATALOG_FACT_KEY
from salespipe_assets.assets.dashboards import DASHBOARD_KEY
from salespipe_assets.assets.fact import FACT_KEY
from salespipe_assets.assets.warehouse import WAREHOUSE_FACT_KEY
from salespipe_assets.definitions import build_definitions
from salespipe_assets.runner import step_failure_lines
from salespipe_assets.settings import Settings
from spark_steps import stage_file
from spark_steps.lakefs import DATA_FILE
from tests.conftest import inventory_row, sales_row, write_landing

WEEK = "2024-01-07"
DAY = "2024-01-08"
DOWNSTREAM_STEPS = ["catalog__weekly_sales_inventory", "warehouse__weekly_sales_inventory",
                    "dashboard__weekly_sales_inventory"]


def _settings(root: Path, lake: Path) -> Settings:
    return Settings(env="local", lake=str(lake), warehouse=str(root / "warehouse.duckdb"),
                    catalog=str(root / "catalog.duckdb"), spark_master="local[2]",
                    partition_start="2024-01-07", partition_end="2024-01-21")


def _staged_week(spark, lake: Path) -> None:
    """Two sales rows and one inventory row for one day, staged by the real step."""
    sources = {
        "sales": write_landing(lake, "sales", DAY, [sales_row(1, prod=10, amt="5.00"), sales_row(2, prod=11, amt="7.00")]),
        "inventory": write_landing(lake, "inventory", DAY, [inventory_row(prod=10)]),
    }
    for table, source in sources.items():
        result = stage_file.run(spark, lake=str(lake), table=table, source=source, business_date=DAY)
        assert result["rows_rejected"] == 0 and result["published"], result


def _plant_negative_sale(lake: Path) -> None:
    """Product 11's sale becomes -7.00: what a bug upstream of the fact would look like."""
    path = lake / f"staged/sales/business_date={DAY}/{DATA_FILE}"
    table = pq.read_table(path)
    column = table.column("sales_amt")
    amounts = [-Decimal("7.00") if p == 11 else a for p, a in
               zip(table.column("prod_key").to_pylist(), column.to_pylist())]
    table = table.set_column(table.schema.get_field_index("sales_amt"), table.schema.field("sales_amt"),
                             pa.array(amounts, type=column.type))
    pq.write_table(table, path)


def _step_events(result, kind: dg.DagsterEventType) -> list:
    return [e for e in result.all_events if e.event_type == kind]


def test_a_week_failing_a_blocking_fact_check_never_reaches_the_warehouse(spark, tmp_path, monkeypatch):
    monkeypatch.setenv("SUPERSET_URL", "")  # no BI here: the dashboard would only skip anyway
    lake = tmp_path / "lake"
    _staged_week(spark, lake)
    _plant_negative_sale(lake)
    job = build_definitions(_settings(tmp_path, lake)).resolve_job_def("weekly_job")

    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        result = job.execute_in_process(partition_key=WEEK, instance=instance, raise_on_error=False)

        assert not result.success
        checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
                  for e in _step_events(result, dg.DagsterEventType.ASSET_CHECK_EVALUATION)}
        assert checks["non_negative_measures"].passed is False and checks["non_negative_measures"].blocking
        assert checks["non_negative_measures"].metadata["rows_with_negative_measure"].value == 1
        assert checks["unique_keys"].passed is True
        # The fact itself is published (the lake keeps the evidence) ...
        assert instance.get_latest_materialization_event(FACT_KEY) is not None
        # ... its step fails naming the blocking check, and everything downstream is skipped.
        [failure] = _step_events(result, dg.DagsterEventType.STEP_FAILURE)
        message = failure.step_failure_data.error.message
        assert "blocking asset check failed" in message and "non_negative_measures" in message
        # ... and `salespipe run` says so in one line that names the check
        [line] = step_failure_lines(failure.step_failure_data, failure.step_key)
        assert "blocking asset check failed" in line and "weekly_sales_inventory: non_negative_measures" in line
        started = {e.step_key for e in _step_events(result, dg.DagsterEventType.STEP_START)}
        assert started == {"weekly_sales_inventory"}
        logged = [e.user_message for e in instance.all_logs(result.run_id)]
        for step in DOWNSTREAM_STEPS:  # the in-process executor abandons them, and says so
            assert any(m.startswith(f"Dependencies for step {step}") and m.endswith("Not executing.")
                       for m in logged), step
        for key in (CATALOG_FACT_KEY, WAREHOUSE_FACT_KEY, DASHBOARD_KEY):
            assert instance.get_latest_materialization_event(key) is None, key

    warehouse = tmp_path / "warehouse.duckdb"
    if warehouse.exists():  # the step never ran, so the table is absent or holds no row of the week
        with duckdb.connect(str(warehouse), read_only=True) as con:
            tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
            if "weekly_sales_inventory" in tables:
                rows = con.execute("SELECT count(*) FROM weekly_sales_inventory WHERE week_start = ?",
                                   [dt.date.fromisoformat(WEEK)]).fetchone()[0]
                assert rows == 0


def test_the_same_week_without_the_planted_row_loads(spark, tmp_path, monkeypatch):
    """The control: the same staged week, untouched, passes both checks and loads 2 rows."""
    monkeypatch.setenv("SUPERSET_URL", "")
    lake = tmp_path / "lake"
    _staged_week(spark, lake)
    job = build_definitions(_settings(tmp_path, lake)).resolve_job_def("weekly_job")
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        result = job.execute_in_process(partition_key=WEEK, instance=instance, raise_on_error=False)
        assert result.success
        assert instance.get_latest_materialization_event(WAREHOUSE_FACT_KEY) is not None
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM weekly_sales_inventory").fetchone()[0] == 2  # (100,10), (100,11)
