"""`salespipe dev` for real: the Dagster webserver and daemon on 127.0.0.1, the landing
sensor on (tests/dev_server.py starts it once for the session, raw zone empty). One day's
files copied into the landing zone reach the warehouse with no other action: the landing
sensor queues the daily run and, behind it, its week's run -> daily run -> weekly run ->
DuckDB warehouse table."""

import json
import time

import duckdb
import pytest

from salespipe_assets.partitions import week_of
from tests.dev_server import E2E_DAY

pytestmark = pytest.mark.slow


def _week_rows(warehouse, week: str) -> int | None:
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute(
                "SELECT count(*) FROM weekly_sales_inventory WHERE week_start = CAST(? AS DATE)", [week]
            ).fetchone()[0]
    except (duckdb.IOException, duckdb.CatalogException):
        return None  # not created yet, or a run holds the write lock right now


def _of(job: str, partition: str):
    return lambda r: r["jobName"] == job and r["tags"].get("dagster/partition") == partition


def test_a_landed_day_reaches_the_warehouse_by_itself(dev_server):
    week = week_of(E2E_DAY)
    landed_at = time.time()
    dev_server.land(E2E_DAY)

    day_run = dev_server.wait_for_run(_of("daily_job", E2E_DAY), what=f"the daily run of {E2E_DAY}")
    assert day_run["status"] == "SUCCESS", dev_server.log_tail()
    assert day_run["tags"].get("dagster/sensor_name") == "landing_sensor"
    week_run = dev_server.wait_for_run(_of("weekly_job", week), what=f"the weekly run of {week}")
    assert week_run["status"] == "SUCCESS", dev_server.log_tail()
    assert week_run["tags"].get("dagster/sensor_name") == "landing_sensor"
    # one chain for every run the landing sensor queues: the week waits for its day in the queue
    assert week_run["tags"].get("salespipe/week_chain") == day_run["tags"].get("salespipe/week_chain") == "landing"
    assert week_run["startTime"] >= day_run["endTime"]  # held in the queue until the day was done

    rows = dev_server.wait_until(lambda: _week_rows(dev_server.warehouse, week), timeout=120,
                                 what=f"warehouse rows for week {week}")
    manifest = json.loads((dev_server.lake / f"curated/weekly_sales_inventory/week_start={week}/_manifest.json")
                          .read_text())
    assert manifest["row_count"] == rows
    print(f"landed files -> warehouse in {time.time() - landed_at:.0f}s")
