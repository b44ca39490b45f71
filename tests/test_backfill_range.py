"""Single-run backfills: a range of days (or weeks) in one run, reported partition by
partition, on a real (temporary, SQLite-backed) Dagster instance with real Spark and DuckDB.

The expected values come from the independent DuckDB implementation of SPEC §2-§3
(salespipe_assets.reference), never from the pipeline's own output.
"""

import datetime as dt
import gzip
import hashlib
import os

import dagster as dg
import duckdb
import pytest

from salespipe_assets.datagen import generate
from salespipe_assets.definitions import build_definitions
from salespipe_assets.reference import reference_counts, reference_fact
from salespipe_assets.runner import run_lake
from salespipe_assets.settings import Settings
from salespipe_assets.tracking import DAILY_JOB, WEEKLY_JOB
from spark_steps.fact import FACT_COLUMNS

START = dt.date(2024, 1, 11)  # Thu 11 .. Mon 15: the weeks of Sun 7 and Sun 14
DAYS = 5
SCALE = 0.002
RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def _days(start: dt.date, n: int) -> list[str]:
    return [(start + dt.timedelta(days=i)).isoformat() for i in range(n)]


@pytest.fixture(autouse=True)
def _files_settle_at_once(monkeypatch):
    monkeypatch.setenv("SALESPIPE_SETTLE_SECONDS", "0")  # the files are written before each run


def _env(root, days: int):
    lake = root / "lake"
    generate(lake, START, days, scale=SCALE, seed=11, progress=False)
    settings = Settings(env="local", lake=str(lake), warehouse=str(root / "warehouse.duckdb"),
                        catalog=str(root / "catalog.duckdb"), spark_master="local[2]",
                        partition_start="2020-01-05", partition_end=None)
    (root / "dagster_home").mkdir()
    return lake, settings, build_definitions(settings)


@pytest.fixture(scope="module")
def built(tmp_path_factory, spark):
    """The five days, run once by `salespipe run`."""
    root = tmp_path_factory.mktemp("range")
    lake, settings, defs = _env(root, DAYS)  # no quiet period: conftest's SALESPIPE_SETTLE_SECONDS=0
    with dg.DagsterInstance.local_temp(str(root / "dagster_home")) as instance:
        summary = run_lake(defs, instance, defs.resources["lake"], progress=False)
        yield {"lake": lake, "settings": settings, "defs": defs, "instance": instance, "summary": summary}


def _runs(instance, job):
    return [r.dagster_run for r in instance.get_run_records(dg.RunsFilter(job_name=job))]


def _meta(record) -> dict:
    return {k: v.value for k, v in record.asset_materialization.metadata.items()}


def _curated_fact(lake) -> list[tuple]:
    return duckdb.sql(
        f"SELECT {', '.join(FACT_COLUMNS)} FROM read_parquet('{lake}/curated/weekly_sales_inventory/*/*.parquet', "
        "hive_partitioning = true) ORDER BY week_start, store_key, prod_key").fetchall()


def test_run_makes_one_daily_run_and_one_weekly_run(built):
    summary, instance = built["summary"], built["instance"]
    assert summary.ok, summary.all_errors()
    [daily] = _runs(instance, DAILY_JOB)
    [weekly] = _runs(instance, WEEKLY_JOB)
    assert (daily.tags[RANGE_START], daily.tags[RANGE_END]) == ("2024-01-11", "2024-01-15")
    assert (weekly.tags[RANGE_START], weekly.tags[RANGE_END]) == ("2024-01-07", "2024-01-14")
    # the summary still lists every day and week on its own
    assert [o.partition for o in summary.days] == _days(START, DAYS)
    assert [o.partition for o in summary.weeks] == ["2024-01-07", "2024-01-14"]
    assert {o.run_id for o in summary.days} == {daily.run_id}


def test_every_day_has_its_own_materialization_and_check(built):
    instance, lake = built["instance"], built["lake"]
    ref = reference_counts(lake / "raw")
    [daily] = _runs(instance, DAILY_JOB)
    for table in ("sales", "inventory"):
        key = dg.AssetKey(f"staged_{table}")
        for day in _days(START, DAYS):
            [record] = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[day]), limit=10).records
            assert record.run_id == daily.run_id  # every day from the one range run
            meta = _meta(record)
            name = f"{table}_{day}.csv.gz"
            assert meta["source_file"]["name"] == name
            assert (meta["rows_read"], meta["rows_accepted"], meta["rows_rejected"]) == (
                ref[name]["read"], ref[name]["accepted"], ref[name]["rejected"])
            assert meta["source_file"]["sha256"] == hashlib.sha256((lake / "raw" / name).read_bytes()).hexdigest()
        checks = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(key, "rows_reconcile"), limit=100)
        assert {c.partition: c.status.value for c in checks} == {d: "SUCCEEDED" for d in _days(START, DAYS)}


def test_two_weeks_in_one_run_equal_two_single_week_runs(built):
    lake, instance, defs = built["lake"], built["instance"], built["defs"]
    expected = [tuple(r.values()) for r in reference_fact(lake / "raw").to_pylist()]
    [weekly] = _runs(instance, WEEKLY_JOB)  # both weeks in one run
    together = _curated_fact(lake)
    assert len(together) == len(expected) and together == sorted(together)
    rows_by_week = {}
    for week in ("2024-01-07", "2024-01-14"):
        [record] = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("weekly_sales_inventory"), asset_partitions=[week]),
            limit=10).records
        rows_by_week[week] = _meta(record)["dagster/row_count"]
        assert record.run_id == weekly.run_id
    assert rows_by_week == {w: sum(1 for r in expected if str(r[0]) == w) for w in rows_by_week}
    weekly_job = defs.resolve_job_def(WEEKLY_JOB)
    for week in ("2024-01-07", "2024-01-14"):
        assert weekly_job.execute_in_process(partition_key=week, instance=instance).success
    assert _curated_fact(lake) == together


def test_a_bad_file_in_a_range_fails_only_its_day(tmp_path, spark):
    lake, _, defs = _env(tmp_path, 3)  # Thu 11, Fri 12, Sat 13: one week
    with dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home")) as instance:
        assert run_lake(defs, instance, defs.resources["lake"], progress=False).ok
        published = (lake / "staged/sales/business_date=2024-01-12/_manifest.json").read_text()
        # a bad re-send of Friday's sales and a new version of Saturday's: one range run of two days
        (lake / "raw/sales_2024-01-12.csv.gz").write_bytes(gzip.compress(b"trans_id,oops\n1,2\n", mtime=0))
        saturday = lake / "raw/inventory_2024-01-13.csv.gz"
        lines = gzip.decompress(saturday.read_bytes()).decode().splitlines()
        saturday.write_bytes(gzip.compress(("\n".join(lines[:-1]) + "\n").encode(), mtime=0))  # one row fewer

        summary = run_lake(defs, instance, defs.resources["lake"], progress=False)
        assert not summary.ok
        by_day = {o.partition: o for o in summary.days}
        assert sorted(by_day) == ["2024-01-12", "2024-01-13"] and len({o.run_id for o in summary.days}) == 1
        [error] = by_day["2024-01-12"].errors
        assert error.startswith("raw/sales_2024-01-12.csv.gz: wrong header")
        assert by_day["2024-01-13"].ok and by_day["2024-01-13"].errors == []
        assert summary.all_errors() == [error]
        assert (lake / "quarantine/sales_2024-01-12.csv.gz").exists()
        # the previously published Friday is untouched; Saturday's new inventory is published
        assert (lake / "staged/sales/business_date=2024-01-12/_manifest.json").read_text() == published
        ref = reference_counts(lake / "raw")["inventory_2024-01-13.csv.gz"]
        assert by_day["2024-01-13"].metadata["staged_inventory"]["rows_read"] == ref["read"] == len(lines) - 2
        # Friday's sales partition got no materialization in that run: the UI shows it failed
        run_id = by_day["2024-01-12"].run_id
        key = dg.AssetKey("staged_sales")
        latest = {d: instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=key, asset_partitions=[d]), limit=1).records[0].run_id
            for d in ("2024-01-12", "2024-01-13")}
        assert latest["2024-01-13"] == run_id and latest["2024-01-12"] != run_id
        failed = instance.event_log_storage.get_latest_asset_partition_materialization_attempts_without_materializations(key)
        assert set(failed) == {"2024-01-12"} and failed["2024-01-12"][0] == run_id
        assert instance.get_run_by_id(run_id).status == dg.DagsterRunStatus.FAILURE
        # the week was still rebuilt from what is staged
        assert [o.partition for o in summary.weeks] == ["2024-01-07"] and summary.weeks[0].ok
