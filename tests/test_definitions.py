"""The code location as Dagster loads it, in both environments (fast: no Spark, no service).

The definitions load and validate for local and aws settings; settings (not the import-time
environment) give the partition bounds; in aws the Snowflake source export sits upstream of
the five raw assets and a daily schedule runs it for the day before; the checks that stop
bad data are blocking; the landing assets and the warehouse fact carry a freshness deadline.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import subprocess  # nosec B404  # fixed argument list
import sys

import dagster as dg
import pytest

from salespipe_assets.assets.fact import FACT_KEY
from salespipe_assets.assets.landing import raw_key
from salespipe_assets.assets.staging import RECONCILE, staged_key
from salespipe_assets.assets.warehouse import WAREHOUSE_FACT_KEY
from salespipe_assets.definitions import build_definitions
from salespipe_assets.settings import PROJECT_ROOT, Settings
from spark_steps.contract import TABLES

EXPORT_KEY = dg.AssetKey("snowflake_source_export")
RAW_KEYS = {raw_key(t) for t in TABLES}


def _settings(tmp_path, env: str, **changes) -> Settings:
    lake = "s3://salespipe-test/lake" if env == "aws" else str(tmp_path / "lake")
    return Settings(env=env, lake=lake, warehouse=str(tmp_path / "warehouse.duckdb"),
                    catalog=str(tmp_path / "catalog.duckdb"),
                    spark_master="emr" if env == "aws" else "local[2]",
                    partition_start="2020-01-05", partition_end=None,
                    warehouse_kind="snowflake" if env == "aws" else "duckdb", **changes)


@pytest.fixture(autouse=True)
def emr_locations(monkeypatch):
    """What the aws environment's EMR runtime requires to be declared (nothing is contacted)."""
    monkeypatch.setenv("SALESPIPE_EMR_ARTIFACTS_URI", "s3://salespipe-test/emr/artifacts")
    monkeypatch.setenv("SALESPIPE_EMR_LOG_URI", "s3://salespipe-test/emr/logs")


@pytest.fixture(params=["local", "aws"])
def env(request) -> str:
    return request.param


def test_definitions_load_and_validate_in_both_environments(tmp_path, env):
    defs = build_definitions(_settings(tmp_path, env))
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert RAW_KEYS | {FACT_KEY, WAREHOUSE_FACT_KEY} <= graph.get_all_asset_keys()
    assert defs.resolve_job_def("daily_job") and defs.resolve_job_def("weekly_job")


def test_the_code_location_module_loads_as_dagster_loads_it(tmp_path):
    """`dagster definitions validate` on the module pyproject names, in a fresh process."""
    out = subprocess.run(  # nosec B603  # fixed argument list
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "salespipe_assets.definitions"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DAGSTER_HOME": str(tmp_path),
             "SALESPIPE_LAKE": str(tmp_path / "lake")})
    assert out.returncode == 0, out.stdout + out.stderr


def test_aws_raw_assets_depend_on_the_source_export_and_a_daily_schedule_runs_it(tmp_path):
    defs = build_definitions(_settings(tmp_path, "aws", export_at="01:30"))
    graph = defs.resolve_asset_graph()
    for key in RAW_KEYS:
        assert graph.get(key).parent_keys == {EXPORT_KEY}
    assert graph.get(EXPORT_KEY).child_keys == RAW_KEYS

    schedule = defs.resolve_schedule_def("source_export_schedule")
    assert schedule.cron_schedule == "30 1 * * *" and schedule.execution_timezone == "UTC"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def(schedule.job_name)
    assert set(job.asset_layer.selected_asset_keys) == {EXPORT_KEY}
    # The tick of 2024-01-09 01:30 exports the finished day before it.
    tick = dt.datetime(2024, 1, 9, 1, 30, tzinfo=dt.timezone.utc)
    with dg.build_schedule_context(scheduled_execution_time=tick,
                                   repository_def=defs.get_repository_def()) as context:
        [request] = list(schedule.evaluate_tick(context).run_requests)
    assert request.partition_key == "2024-01-08"


def test_local_has_no_source_export_and_no_schedule(tmp_path):
    defs = build_definitions(_settings(tmp_path, "local"))
    graph = defs.resolve_asset_graph()
    assert EXPORT_KEY not in graph.get_all_asset_keys()
    for key in RAW_KEYS:
        assert not graph.get(key).parent_keys
    assert not list(defs.schedules or [])


def test_partition_bounds_come_from_the_settings_given(tmp_path, monkeypatch):
    monkeypatch.setenv("SALESPIPE_PARTITION_START", "2020-01-05")
    settings = _settings(tmp_path, "local")
    settings = dataclasses.replace(settings, partition_start="2023-01-01", partition_end="2023-02-05")
    graph = build_definitions(settings).resolve_asset_graph()
    days = graph.get(staged_key("sales")).partitions_def.get_partition_keys()
    weeks = graph.get(FACT_KEY).partitions_def.get_partition_keys()
    assert (days[0], days[-1], len(days)) == ("2023-01-01", "2023-02-04", 35)  # 2023-01-01 .. 02-04
    assert (weeks[0], weeks[-1], len(weeks)) == ("2023-01-01", "2023-01-29", 5)  # five Sundays


def test_checks_that_stop_bad_data_are_blocking(tmp_path):
    graph = build_definitions(_settings(tmp_path, "local")).resolve_asset_graph()
    blocking = {key for key in graph.asset_check_keys if graph.get_check_spec(key).blocking}
    expected = {dg.AssetCheckKey(FACT_KEY, "unique_keys"), dg.AssetCheckKey(FACT_KEY, "non_negative_measures"),
                *(dg.AssetCheckKey(staged_key(t), RECONCILE) for t in TABLES)}
    assert expected <= blocking


def test_landing_and_warehouse_fact_have_a_daily_deadline_from_settings(tmp_path):
    graph = build_definitions(_settings(tmp_path, "local", landing_due="05:15",
                                        warehouse_due="08:00")).resolve_asset_graph()
    for key in RAW_KEYS:
        policy = graph.get(key).freshness_policy
        assert isinstance(policy, dg.FreshnessPolicy)
        assert (policy.deadline_cron, policy.timezone, policy.lower_bound_delta) == (
            "15 5 * * *", "UTC", dt.timedelta(days=1))
    assert graph.get(WAREHOUSE_FACT_KEY).freshness_policy.deadline_cron == "0 8 * * *"
    assert graph.get(FACT_KEY).freshness_policy is None


def test_a_due_time_that_is_not_hh_mm_is_refused_with_its_variable(monkeypatch):
    monkeypatch.setenv("SALESPIPE_LANDING_DUE", "6am")
    with pytest.raises(ValueError, match=r"SALESPIPE_LANDING_DUE must be a time of day HH:MM .*'6am'"):
        Settings.from_env()
