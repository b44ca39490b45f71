"""`salespipe dev` for real: the Dagster webserver and daemon on 127.0.0.1, the landing
sensor on. One day's files copied into the landing zone reach the warehouse with no
other action (sensor -> daily run -> week-after-day sensor -> weekly run)."""

import datetime as dt
import shutil
import sys
import time
from pathlib import Path

import duckdb
import pytest

from salespipe_assets.datagen import generate
from tests.servers import free_port, start, stop, wait_http

pytestmark = pytest.mark.slow


def _week_rows(warehouse: Path, week: str) -> int | None:
    try:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute(
                "SELECT count(*) FROM weekly_sales_inventory WHERE week_start = CAST(? AS DATE)", [week]
            ).fetchone()[0]
    except (duckdb.IOException, duckdb.CatalogException):
        return None  # not created yet, or a run holds the write lock right now


def test_a_landed_day_reaches_the_warehouse_by_itself(tmp_path):
    upstream, lake, home = tmp_path / "upstream", tmp_path / "lake", tmp_path / "dagster_home"
    (lake / "raw").mkdir(parents=True)
    home.mkdir()
    generate(upstream, dt.date(2024, 1, 9), 1, scale=0.001, seed=3, progress=False)
    warehouse = tmp_path / "warehouse.duckdb"
    port = free_port()
    salespipe = str(Path(sys.executable).parent / "salespipe")
    proc = start([salespipe, "dev", "--lake", str(lake), "--warehouse", str(warehouse), "--port", str(port),
                  "--sensor-interval", "2"], env={"DAGSTER_HOME": str(home)}, log=tmp_path / "dev.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/server_info", timeout=180, proc=proc)
        landed_at = time.time()
        for f in sorted((upstream / "raw").iterdir()):
            shutil.copy(f, lake / "raw" / f.name)
        deadline = landed_at + 480
        rows = None
        while time.time() < deadline and not rows:
            assert proc.poll() is None, (tmp_path / "dev.log").read_text()[-3000:]
            time.sleep(3)
            rows = _week_rows(warehouse, "2024-01-07")
        assert rows, f"no warehouse rows after {time.time() - landed_at:.0f}s:\n" + (tmp_path / "dev.log").read_text()[-3000:]
        manifest = (lake / "curated/weekly_sales_inventory/week_start=2024-01-07/_manifest.json").read_text()
        assert f'"row_count": {rows}' in manifest
        print(f"landed file -> warehouse in {time.time() - landed_at:.0f}s")
    finally:
        stop(proc)
