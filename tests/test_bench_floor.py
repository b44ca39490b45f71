"""The bench's plain-Spark floor (a typed CSV read and a Parquet write of the raw files,
no validation) and the catchup measurement's bookkeeping, on real components at a tiny
scale. The full measurements run in test_bench.py (heavy)."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys

import duckdb
import pytest

from salespipe_assets.datagen import generate
from salespipe_bench import catchup, staging_warm
from salespipe_bench.context import BenchOptions
from salespipe_bench.worker import spark_floor


def test_the_floor_reads_every_raw_file_typed_and_writes_parquet(spark, tmp_path):
    report = generate(tmp_path, dt.date(2024, 1, 8), 2, scale=0.002, progress=False)
    seconds = spark_floor(spark, tmp_path)
    assert set(seconds["by_table"]) == {"sales", "inventory", "store", "product", "calendar"}
    assert seconds["spark_floor"] >= sum(seconds["by_table"].values()) > 0
    for table in ("sales", "inventory"):
        # both days' rows, every one (no validation drops any)
        [(rows,)] = duckdb.sql(f"SELECT count(*) FROM read_parquet('{tmp_path}/floor/{table}/*.parquet')").fetchall()
        assert rows == report["rows"][table]
    described = duckdb.sql(f"DESCRIBE SELECT * FROM read_parquet('{tmp_path}/floor/sales/*.parquet')").fetchall()
    types = {r[0]: r[1] for r in described}
    assert types["sales_qty"] == "DECIMAL(38,2)" and types["trans_dt"] == "DATE" and types["store_key"] == "INTEGER"


def test_the_catchup_weeks_are_the_sundays_of_its_days():
    # 28 days from Sunday 2024-01-07: four whole weeks; 8 days: a second week with one day
    assert catchup._weeks(28) == ["2024-01-07", "2024-01-14", "2024-01-21", "2024-01-28"]
    assert catchup._weeks(8) == ["2024-01-07", "2024-01-14"]


def test_the_demo_scale_never_exceeds_the_bench_scale():
    assert BenchOptions().demo_scale == 0.01 and BenchOptions(scale=0.002).demo_scale == 0.002


@pytest.mark.heavy  # the bench itself, in a JVM of its own: `make test-heavy`
def test_staging_warm_stages_and_floors_the_same_files_in_a_jvm_of_its_own(tmp_path):
    """The staging_warm child on a tiny day's sales and store files, in a process of its own
    as the bench starts it: its JVM started for so few bytes has C1 alone (as `salespipe run`
    would start it), and every round stages both tables (every row accepted: clean data)
    and runs plain Spark on them."""
    report = generate(tmp_path, dt.date(2024, 1, 8), 1, scale=0.001, progress=False)
    files = sorted(str(p) for p in (tmp_path / "raw").iterdir() if p.name.startswith(("sales_", "store_")))
    done = subprocess.run([sys.executable, "-m", "salespipe_bench.staging_warm", "--child", json.dumps(files), "2"],
                          capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert (out["files"], out["jit"]) == (2, "C1 alone")
    assert len(out["floor"]) == len(out["staged"]) == 2 and min(out["floor"] + out["staged"]) > 0
    assert out["rows_accepted"] == report["rows"]["sales"] + report["rows"]["store"]
    summary = staging_warm.summarize(out, 0.001)
    assert summary["warm_staged_seconds"] == out["staged"][1] and summary["cold_staged_seconds"] == out["staged"][0]
    assert summary["warm_ratio"] == round(out["staged"][1] / out["floor"][1], 3)
