"""The two instance profiles and the run-monitoring settings, without a database
(tests/test_postgres_instance.py runs them on a real PostgreSQL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from salespipe_assets.instance import PG_ENV, instance_yaml
from salespipe_assets.settings import PROJECT_ROOT

SALESPIPE = str(Path(sys.executable).parent / "salespipe")


def test_the_postgres_profile_is_the_local_one_plus_storage_read_from_the_environment():
    local, postgres = yaml.safe_load(instance_yaml("local")), yaml.safe_load(instance_yaml("postgres"))
    assert local == yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    storage = postgres.pop("storage")
    assert postgres == local  # the same queue, week-chain limit, monitoring, sensors, retention
    db = storage["postgres"]["postgres_db"]
    assert {field: db[field] for field in PG_ENV} == {field: {"env": var} for field, var in PG_ENV.items()}
    assert "storage" not in local  # SQLite under DAGSTER_HOME


def test_run_monitoring_is_on_and_the_week_chain_is_limited():
    config = yaml.safe_load(instance_yaml("local"))
    monitoring = config["run_monitoring"]
    assert monitoring["enabled"] is True
    assert monitoring["start_timeout_seconds"] > 0 and monitoring["cancel_timeout_seconds"] > 0
    assert monitoring["max_runtime_seconds"] > 0 and monitoring["poll_interval_seconds"] > 0
    limits = config["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert {"key": "salespipe/week_chain", "value": {"applyLimitPerUniqueValue": True}, "limit": 1} in limits


def _job_tags(env: dict) -> dict:
    code = ("import json; from salespipe_assets.definitions import defs; "
            "print(json.dumps({j: dict(defs.get_job_def(j).run_tags) for j in ('daily_job', 'weekly_job')}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                         env={**{k: v for k, v in os.environ.items() if k != "SALESPIPE_MAX_RUNTIME"}, **env})
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_every_job_carries_the_max_runtime_of_the_settings():
    assert {job: tags.get("dagster/max_runtime") for job, tags in _job_tags({}).items()} == \
        {"daily_job": "3600", "weekly_job": "3600"}
    assert {job: tags.get("dagster/max_runtime") for job, tags in _job_tags({"SALESPIPE_MAX_RUNTIME": "90"}).items()} == \
        {"daily_job": "90", "weekly_job": "90"}


def _salespipe(home: Path, lake: Path, env: dict) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PG_")}
    return subprocess.run([SALESPIPE, "query", "--lake", str(lake), "SELECT 1"], capture_output=True, text=True,
                          env={**base, "DAGSTER_HOME": str(home), **env})


def test_salespipe_writes_the_chosen_profile_and_names_what_is_missing(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    missing = _salespipe(tmp_path / "a", lake, {"SALESPIPE_INSTANCE": "postgres", "DAGSTER_PG_HOST": "db"})
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines() == [
        "error: SALESPIPE_INSTANCE=postgres needs DAGSTER_PG_DB, DAGSTER_PG_USERNAME, DAGSTER_PG_PASSWORD in the environment"]
    pg = {"SALESPIPE_INSTANCE": "postgres", "DAGSTER_PG_HOST": "db", "DAGSTER_PG_DB": "d",
          "DAGSTER_PG_USERNAME": "u", "DAGSTER_PG_PASSWORD": "secret-value"}
    _salespipe(tmp_path / "b", lake, pg)  # the query fails (no catalog); the instance file is written first
    written = (tmp_path / "b" / "dagster.yaml").read_text()
    assert written == instance_yaml("postgres") and "secret-value" not in written
    _salespipe(tmp_path / "c", lake, {"SALESPIPE_INSTANCE": "local"})
    assert (tmp_path / "c" / "dagster.yaml").read_text() == instance_yaml("local")
    wrong = _salespipe(tmp_path / "d", lake, {"SALESPIPE_INSTANCE": "mysql"})
    assert "SALESPIPE_INSTANCE must be one of local, postgres, not 'mysql'" in wrong.stderr
