"""End to end on the embedded default: a generated lake over two weeks, materialized on a
real (temporary, SQLite-backed) Dagster instance with real Spark and DuckDB, compared
with the independent DuckDB implementation of SPEC §2-§3 in salespipe_assets.reference.

The tests in this module run in order and share one lake and one instance.
"""

import datetime as dt
import gzip
import math
import os
from decimal import Decimal

import dagster as dg
import duckdb
import pytest

from salespipe_assets.datagen import generate
from salespipe_assets.definitions import build_definitions
from salespipe_assets.reference import reference_counts, reference_fact
from salespipe_assets.runner import run_lake
from salespipe_assets.settings import Settings
from spark_steps.fact import FACT_COLUMNS

CANARY = "canary-7f3e9c1d-secret"
# Every credential variable the project reads holds the canary during these runs.
SECRET_VARIABLES = ["AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "SNOWFLAKE_PASSWORD",
                    "SNOWFLAKE_PRIVATE_KEY", "DAGSTER_GRAPHQL_TOKEN", "SUPERSET_ADMIN_PASSWORD"]
START = dt.date(2024, 1, 11)  # a Thursday: the first week is partial
DAYS = 5                      # Thu 11 .. Mon 15: weeks of Sun 7 and Sun 14
SCALE = 0.002


@pytest.fixture(scope="module")
def env(tmp_path_factory, spark):
    saved = {k: os.environ.get(k) for k in [*SECRET_VARIABLES, "SALESPIPE_SETTLE_SECONDS"]}
    os.environ.update({k: CANARY for k in SECRET_VARIABLES})
    os.environ["SALESPIPE_SETTLE_SECONDS"] = "0"  # the tests write files just before each run
    root = tmp_path_factory.mktemp("e2e")
    lake = root / "lake"
    generate(lake, START, DAYS, scale=SCALE, seed=7, progress=False)
    settings = Settings(env="local", lake=str(lake), warehouse=str(root / "warehouse.duckdb"),
                        catalog=str(root / "catalog.duckdb"), spark_master="local[2]",
                        partition_start="2020-01-05", partition_end=None)
    defs = build_definitions(settings)
    (root / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(str(root / "dagster_home")) as instance:
        yield {"lake": lake, "settings": settings, "defs": defs, "instance": instance, "root": root}
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _run(env):
    return run_lake(env["defs"], env["instance"], env["defs"].resources["lake"], progress=False)


def _curated_fact(lake) -> list[tuple]:
    cols = ", ".join(FACT_COLUMNS)
    return duckdb.sql(
        f"SELECT {cols} FROM read_parquet('{lake}/curated/weekly_sales_inventory/*/*.parquet', "
        "hive_partitioning = true) ORDER BY week_start, store_key, prod_key").fetchall()


def _assert_same_rows(actual: list[tuple], expected: list[tuple]):
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        for col, x, y in zip(FACT_COLUMNS, a, e):
            if isinstance(y, float) and x is not None:
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (col, a, e)
            else:
                assert x == y, (col, a, e)


def _assert_matches_reference(lake):
    expected = [tuple(r.values()) for r in reference_fact(lake / "raw").to_pylist()]
    _assert_same_rows(_curated_fact(lake), expected)


def test_first_run_builds_every_day_and_both_weeks(env):
    summary = _run(env)
    assert summary.ok, summary.all_errors()
    assert [o.partition for o in summary.days] == [(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)]
    assert [o.partition for o in summary.weeks] == ["2024-01-07", "2024-01-14"]
    _assert_matches_reference(env["lake"])


def test_every_file_reconciles_with_the_reference_counts(env):
    ref = reference_counts(env["lake"] / "raw")
    records = env["instance"].fetch_materializations(dg.AssetKey("staged_sales"), limit=100).records
    assert len(records) == DAYS
    for rec in records:
        meta = {k: v.value for k, v in rec.asset_materialization.metadata.items()}
        name = meta["source_file"]["name"]
        assert meta["rows_read"] == meta["rows_accepted"] + meta["rows_rejected"]
        assert (meta["rows_read"], meta["rows_accepted"], meta["rows_rejected"]) == (
            ref[name]["read"], ref[name]["accepted"], ref[name]["rejected"])
    checks = env["instance"].event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(dg.AssetKey("staged_sales"), "rows_reconcile"), limit=100)
    # one daily run over the range, one result per day (each its own partition)
    days = {(START + dt.timedelta(days=i)).isoformat() for i in range(DAYS)}
    assert {c.partition: c.status.value for c in checks} == {d: "SUCCEEDED" for d in days}
    assert len({c.run_id for c in checks}) == 1


def test_warehouse_holds_the_curated_rows_per_week(env):
    with duckdb.connect(env["settings"].warehouse, read_only=True) as con:
        cols = ", ".join(FACT_COLUMNS)
        rows = con.execute(f"SELECT {cols} FROM weekly_sales_inventory ORDER BY week_start, store_key, prod_key").fetchall()
        dims = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("store", "product", "calendar")}
    _assert_same_rows(rows, _curated_fact(env["lake"]))
    assert all(n > 0 for n in dims.values())


def test_catalog_answers_queries(env):
    with duckdb.connect(env["settings"].catalog, read_only=True) as con:
        weeks = con.execute("SELECT week_start, count(*) FROM weekly_sales_inventory GROUP BY 1 ORDER BY 1").fetchall()
        stores = con.execute("SELECT count(*) FROM store").fetchone()[0]
    assert [str(w) for w, _ in weeks] == ["2024-01-07", "2024-01-14"]
    assert stores > 0


def test_nothing_new_recomputes_nothing(env):
    summary = _run(env)
    assert summary.ok and summary.days == [] and summary.weeks == []
    assert len(summary.unchanged_days) == DAYS


def test_one_new_day_recomputes_only_its_day_and_week(env):
    generate(env["lake"], START + dt.timedelta(days=DAYS), 1, scale=SCALE, seed=7, progress=False)  # Tue 16
    summary = _run(env)
    assert summary.ok, summary.all_errors()
    assert [o.partition for o in summary.days] == ["2024-01-16"]
    assert [o.partition for o in summary.weeks] == ["2024-01-14"]
    _assert_matches_reference(env["lake"])


def test_bad_rows_and_a_bad_file(env):
    lake = env["lake"]
    # re-sent sales file for the 12th with bad rows appended: its day runs again
    path = lake / "raw" / "sales_2024-01-12.csv.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    first = text.splitlines()[1]
    bad = [
        first,                                               # repeated trans_id
        "9000000001,1,1,2024-01-13,1,1.00,1.00,1.00,0,1,0,0",  # not the file's date
        "9000000002,1,1,2024-01-12,1,-1.00,1.00,1.00,0,1,0,0",  # negative quantity
        "9000000003,1,1,2024-01-12,1,abc,1.00,1.00,0,1,0,0",    # unparseable
        "9000000004,1,1",                                     # wrong field count
    ]
    path.write_bytes(gzip.compress((text + "\n".join(bad) + "\n").encode(), mtime=0))
    # a new day whose inventory file has a wrong header: only that day fails
    generate(lake, dt.date(2024, 1, 20), 1, scale=SCALE, seed=7, progress=False)
    inv = lake / "raw" / "inventory_2024-01-20.csv.gz"
    inv.write_bytes(gzip.compress(b"cal_dt,store\n2024-01-20,1\n", mtime=0))

    summary = _run(env)
    assert not summary.ok
    by_day = {o.partition: o for o in summary.days}
    assert sorted(by_day) == ["2024-01-12", "2024-01-20"]
    assert by_day["2024-01-12"].ok
    assert by_day["2024-01-12"].metadata["staged_sales"]["rows_rejected"] == len(bad)
    assert not by_day["2024-01-20"].ok
    [error] = by_day["2024-01-20"].errors
    assert error.startswith("raw/inventory_2024-01-20.csv.gz: wrong header")
    assert (lake / "quarantine" / "inventory_2024-01-20.csv.gz").exists()
    assert (lake / "quarantine" / "inventory_2024-01-20.csv.gz.reason.json").exists()
    # the day's good files were still staged, and both touched weeks were rebuilt
    assert by_day["2024-01-20"].metadata["staged_sales"]["rows_accepted"] > 0
    assert [o.partition for o in summary.weeks] == ["2024-01-07", "2024-01-14"]
    _assert_matches_reference(lake)
    # the quarantined file leaves its day incomplete, reported with what is missing
    assert "missing inventory" in _run(env).incomplete["2024-01-20"]


def test_published_decimals_keep_their_scale(env):
    value = duckdb.sql(
        f"SELECT total_sales_amt FROM read_parquet('{env['lake']}/curated/weekly_sales_inventory/*/*.parquet') LIMIT 1"
    ).fetchall()[0][0]
    assert isinstance(value, Decimal) and value.as_tuple().exponent == -2


def test_no_secret_reaches_logs_metadata_or_errors(env):
    """Scan every event (logs, metadata, failures) of every run, the compute logs and the
    lake's manifests for the canary held by all credential variables."""
    instance = env["instance"]
    runs = instance.get_runs()
    assert len(runs) >= 6  # range runs: one per contiguous range of days, one per range of weeks
    for run in runs:
        for record in instance.all_logs(run.run_id):
            text = dg.serialize_value(record) if hasattr(dg, "serialize_value") else repr(record)
            assert CANARY not in text, f"secret in run {run.run_id}: {text[:300]}"
        assert CANARY not in repr(run.tags) and CANARY not in repr(run.run_config)
    for path in list((env["root"] / "dagster_home").rglob("*")) + list(env["lake"].rglob("_manifest.json")):
        if path.is_file() and path.stat().st_size < 50_000_000:
            assert CANARY.encode() not in path.read_bytes(), path
