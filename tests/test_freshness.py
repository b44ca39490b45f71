"""Freshness on a real instance (issue 16, point 2): Dagster's own freshness daemon, run over
the code location as ``dagster-daemon`` loads it (a code server process for
``salespipe_assets.definitions``), judges the landed files against ``SALESPIPE_LANDING_DUE``.

A day is landed and registered now: the raw assets pass. Two days later, with no new day
landed, the same evaluation reports them FAIL (overdue) - the state the UI shows. The
warehouse fact, never loaded, has no state to judge yet (UNKNOWN), as Dagster defines it.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from dagster._core.definitions.freshness import FreshnessState
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.freshness import FreshnessDaemon

from salespipe_assets.assets.landing import raw_key, raw_landing
from salespipe_assets.assets.warehouse import WAREHOUSE_FACT_KEY
from salespipe_assets.resources import LocalLake
from salespipe_assets.settings import PROJECT_ROOT
from spark_steps.contract import TABLES
from tests.conftest import write_landing

DAY = "2024-01-08"
RAW_KEYS = [raw_key(t) for t in TABLES]


@pytest.fixture
def location_env(tmp_path, monkeypatch):
    """The code server inherits these: a local lake in tmp_path, files due at 06:00 UTC."""
    lake = tmp_path / "lake"
    for table in TABLES:
        write_landing(lake, table, DAY, [])
    for var, value in {"SALESPIPE_ENV": "local", "SALESPIPE_LAKE": str(lake),
                       "SALESPIPE_WAREHOUSE": str(tmp_path / "warehouse.duckdb"),
                       "SALESPIPE_CATALOG": str(tmp_path / "catalog.duckdb"),
                       "SALESPIPE_PARTITION_START": "2024-01-07", "SALESPIPE_PARTITION_END": "2024-01-21",
                       "SALESPIPE_LANDING_DUE": "06:00", "SUPERSET_URL": ""}.items():
        monkeypatch.setenv(var, value)
    return lake


def _states(instance, keys) -> dict[dg.AssetKey, FreshnessState]:
    records = instance.get_freshness_state_records(keys)
    return {key: records[key].freshness_state for key in keys if key in records}


def _evaluate(workspace) -> None:
    list(FreshnessDaemon().run_iteration(workspace))


def test_landed_files_turn_overdue_when_no_day_lands_by_the_deadline(tmp_path, location_env):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        result = dg.materialize([raw_landing], partition_key=DAY, instance=instance,
                                resources={"lake": LocalLake(root=str(location_env))})
        assert result.success
        landed_at = instance.get_latest_materialization_event(raw_key("sales")).timestamp
        target = ModuleTarget(module_name="salespipe_assets.definitions", attribute="defs",
                              working_directory=str(PROJECT_ROOT), location_name="salespipe")
        with create_test_daemon_workspace_context(target, instance) as workspace:
            _evaluate(workspace)
            assert _states(instance, RAW_KEYS) == {key: FreshnessState.PASS for key in RAW_KEYS}
            assert _states(instance, [WAREHOUSE_FACT_KEY]) == {WAREHOUSE_FACT_KEY: FreshnessState.UNKNOWN}

            # Two days on: the latest 06:00 deadline is more than a day after the last landing.
            later = dt.datetime.fromtimestamp(landed_at, dt.timezone.utc) + dt.timedelta(days=2)
            with freeze_time(later):
                _evaluate(workspace)
            assert _states(instance, RAW_KEYS) == {key: FreshnessState.FAIL for key in RAW_KEYS}

            # A new day lands: fresh again.
            with freeze_time(later):
                dg.materialize([raw_landing], partition_key=DAY, instance=instance,
                               resources={"lake": LocalLake(root=str(location_env))})
                _evaluate(workspace)
            assert _states(instance, RAW_KEYS) == {key: FreshnessState.PASS for key in RAW_KEYS}
