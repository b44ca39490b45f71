"""The ``salespipe`` command as a person meets it, run as a real subprocess: ``--help`` on
every command, errors as one line on stderr with a non-zero exit (a traceback only with
``--debug``), and ``salespipe backfill`` re-running days that ``salespipe run`` would skip
(real Spark local mode, real DuckDB, a Dagster instance in a temp DAGSTER_HOME)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import click
import duckdb
import pytest

from salespipe_assets.cli import cli
from salespipe_assets.datagen import generate

SALESPIPE = str(Path(sys.executable).parent / "salespipe")


def salespipe(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    # DAGSTER_HOME in the test's temp dir: never the project's .dagster_home.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESPIPE_")}
    return subprocess.run([SALESPIPE, *args], capture_output=True, text=True, timeout=timeout,
                          env={**env, "DAGSTER_HOME": str(home)})


def assert_one_line_error(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{result.stderr}"
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


@pytest.mark.parametrize("name", sorted(cli.commands))
def test_every_command_has_help(name, tmp_path):
    command = cli.commands[name]
    result = salespipe(name, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"Usage: salespipe {name}")
    assert command.help.split()[0] in result.stdout
    for param in command.params:
        if isinstance(param, click.Option):
            assert param.opts[-1] in result.stdout, f"{name} --help does not describe {param.opts[-1]}"


def test_the_group_lists_every_command(tmp_path):
    result = salespipe("--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = result.stdout.split("Commands:", 1)[1]
    assert sorted(line.split()[0] for line in listed.splitlines() if line.strip()) == sorted(cli.commands)


def test_run_on_a_file_instead_of_a_lake_is_one_line(tmp_path):
    not_a_dir = tmp_path / "lake.txt"
    not_a_dir.write_text("not a lake")
    result = salespipe("run", "--lake", str(not_a_dir), home=tmp_path / "home")
    assert_one_line_error(result, "lake.txt")


def test_query_without_a_catalog_is_one_line(tmp_path):
    (tmp_path / "lake").mkdir()
    result = salespipe("query", "--lake", str(tmp_path / "lake"), "SELECT 1", home=tmp_path / "home")
    assert_one_line_error(result, "catalog")


def test_an_edited_instance_config_is_kept_and_named(tmp_path):
    (tmp_path / "lake").mkdir()
    home = tmp_path / "home"
    salespipe("query", "--lake", str(tmp_path / "lake"), "SELECT 1", home=home)
    project = (Path(__file__).parent.parent / "dagster.yaml").read_text()
    assert (home / "dagster.yaml").read_text() == project  # a new DAGSTER_HOME gets the project's
    edited = project.replace("max_concurrent_runs: 2", "max_concurrent_runs: 1")
    (home / "dagster.yaml").write_text(edited)
    result = salespipe("query", "--lake", str(tmp_path / "lake"), "SELECT 1", home=home)
    assert (home / "dagster.yaml").read_text() == edited
    assert f"note: {home / 'dagster.yaml'} differs from the project's" in result.stderr


def test_a_sql_error_is_one_line_unless_debug(tmp_path):
    lake = tmp_path / "lake"
    lake.mkdir()
    duckdb.connect(str(lake / "catalog.duckdb")).close()  # an empty catalog: the query itself fails
    result = salespipe("query", "--lake", str(lake), "SELEC 1", home=tmp_path / "home")
    assert_one_line_error(result, "SELEC")
    debug = salespipe("--debug", "query", "--lake", str(lake), "SELEC 1", home=tmp_path / "home")
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_usage_error_is_one_line(tmp_path):
    assert_one_line_error(salespipe("run", home=tmp_path), "--lake")
    assert_one_line_error(salespipe("generate", "--lake", str(tmp_path), "--start", "2024-13-01", "--days", "1",
                                    home=tmp_path), "--start")


def test_backfill_end_before_start_is_one_line(tmp_path):
    (tmp_path / "lake").mkdir()
    result = salespipe("backfill", "--lake", str(tmp_path / "lake"), "--start", "2024-01-09", "--end", "2024-01-08",
                       home=tmp_path / "home")
    assert_one_line_error(result, "--end")


@pytest.mark.slow
def test_backfill_reruns_days_that_run_would_skip(tmp_path):
    lake, home = tmp_path / "lake", tmp_path / "home"
    generate(lake, dt.date(2024, 1, 9), 1, scale=0.001, seed=5, progress=False)
    staged = lake / "staged/sales/business_date=2024-01-09/_manifest.json"
    fact = lake / "curated/weekly_sales_inventory/week_start=2024-01-07/_manifest.json"
    days = ["--start", "2024-01-08", "--end", "2024-01-09"]  # 2024-01-08 has nothing landed

    first = salespipe("backfill", "--lake", str(lake), *days, "--quiet", home=home, timeout=1500)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "days processed: 1 (1 ok, 0 failed)" in first.stdout
    assert "incomplete 2024-01-08: nothing landed" in first.stdout
    assert "weeks built: 1 (1 ok)" in first.stdout
    first_run_id = json.loads(staged.read_text())["run_id"]
    first_fact = json.loads(fact.read_text())
    assert first_fact["row_count"] > 0

    # The backfill recorded the day's content: `run` has nothing to do.
    again = salespipe("run", "--lake", str(lake), "--quiet", home=home, timeout=600)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "days processed: 0" in again.stdout and "unchanged: 1" in again.stdout
    assert json.loads(staged.read_text())["run_id"] == first_run_id

    # ... but a backfill runs the day again, and its week.
    second = salespipe("backfill", "--lake", str(lake), *days, home=home, timeout=1500)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "days processed: 1 (1 ok, 0 failed)" in second.stdout
    assert json.loads(staged.read_text())["run_id"] != first_run_id
    assert json.loads(fact.read_text())["run_id"] != first_fact["run_id"]
    assert "days:" in second.stderr and "weeks:" in second.stderr  # the progress bars
