"""``salespipe bench`` end to end at a tiny scale: results.json describes the machine and
has each requested measurement with its numbers and a ``met`` flag; the plot is a PNG.
Fast: without the ``bench`` extra the command says how to install it, and the product
(definitions, command line) never imports the bench package."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from salespipe_assets.settings import PROJECT_ROOT


def _bench(tmp_path, *args: str) -> dict:
    out, work = tmp_path / "out", tmp_path / "work"
    salespipe = str(Path(sys.executable).parent / "salespipe")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESPIPE_")}
    proc = subprocess.run(
        [salespipe, "bench", "--scale", "0.002", *args, "--out", str(out), "--work", str(work)],
        capture_output=True, text=True, env={**env, "DAGSTER_HOME": str(tmp_path / "home")},
        cwd=PROJECT_ROOT, timeout=1700)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    png = (out / "results.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    with Image.open(out / "results.png") as img:
        img.verify()
    return json.loads((out / "results.json").read_text())


def _salespipe_without(module: str, tmp_path, *args: str) -> subprocess.CompletedProcess:
    """The ``salespipe`` command in a fresh interpreter where ``module`` cannot be imported
    (what an install without the ``bench`` extra looks like to it)."""
    code = (f"import sys; sys.modules[{module!r}] = None; sys.argv = ['salespipe', *sys.argv[1:]]; "
            "from salespipe_assets.cli import main; main()")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESPIPE_")}
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env={**env, "DAGSTER_HOME": str(tmp_path / "home")}, timeout=120)


@pytest.mark.parametrize("missing", ["PIL", "salespipe_bench"])
def test_bench_without_its_extra_says_how_to_install_it(tmp_path, missing):
    out, work = tmp_path / "out", tmp_path / "work"
    proc = _salespipe_without(missing, tmp_path, "bench", "--scale", "0.002", "--out", str(out), "--work", str(work))
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "salespipe[bench]" in lines[0] and "pip install -e '.[bench]'" in lines[0], lines[0]
    assert {"PIL": "pillow"}.get(missing, missing) in lines[0]  # the package pip installs
    assert not out.exists() and not work.exists()  # stopped before measuring anything
    # --help still works without the extra
    helped = _salespipe_without(missing, tmp_path, "bench", "--help")
    assert helped.returncode == 0 and "--only" in helped.stdout, helped.stderr


def test_the_product_never_imports_the_bench(tmp_path):
    """The code location and the command line load without salespipe_bench (nor pillow)."""
    code = ("import sys, salespipe_assets.definitions, salespipe_assets.cli; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('salespipe_bench', 'PIL')))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESPIPE_")}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env={**env, "DAGSTER_HOME": str(tmp_path / "home")}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout


@pytest.mark.heavy  # a week of eight runs: `make test-heavy`
@pytest.mark.timeout(1800)
def test_bench_spark_against_duckdb_writes_results_and_plot(tmp_path):
    results = _bench(tmp_path, "--only", "spark_vs_duckdb")
    machine = results["machine"]
    for key in ("cpu_model", "cores", "ram_gb", "os", "python", "java", "spark", "dagster", "duckdb",
                "load_average_at_start"):
        assert machine.get(key), key
    assert set(results["measurements"]) == {"spark_vs_duckdb"}

    svd = results["measurements"]["spark_vs_duckdb"]
    assert isinstance(svd["met"], bool) and svd["target"] and svd["note"]
    assert svd["seconds"]["duckdb"] > 0 and svd["seconds"]["spark_pipeline"] > svd["seconds"]["spark_steps"] > 0
    assert svd["ratio"] > 0
    # plain Spark on the same files, with its JVM start like the pipeline's figure
    assert svd["seconds"]["spark_floor"] > svd["seconds"]["spark_floor_read_write"] > 0
    assert set(svd["seconds"]["spark_floor_by_table"]) == {"sales", "inventory", "store", "product", "calendar"}
    assert svd["ratio_floor"] == pytest.approx(svd["seconds"]["spark_pipeline"] / svd["seconds"]["spark_floor"], rel=0.01)
    assert "demo_scale" not in svd  # --scale 0.002 is below the demo scale: one scale only
    assert svd["fact_comparison"]["equal"], svd["fact_comparison"]  # both sides built the same fact


@pytest.mark.heavy  # two weeks processed for real and seeded history: `make test-heavy`
@pytest.mark.timeout(1800)
def test_bench_history_writes_results_and_plot(tmp_path):
    results = _bench(tmp_path, "--history", "1,2", "--repeat", "1", "--only", "history")
    history = results["measurements"]["history"]
    assert isinstance(history["met"], bool) and history["target"] and history["note"]
    assert [p["weeks"] for p in history["points"]] == [1, 2]
    for point in history["points"]:
        assert point["tick_seconds"] > 0 and point["daily_seconds"] > 0 and point["weekly_seconds"] > 0
    assert history["points"][1]["raw_files"] > history["points"][0]["raw_files"]
    assert history["max_over_min"] >= 1


@pytest.mark.heavy  # 28 days and a week through `salespipe run`: `make test-heavy`
@pytest.mark.timeout(1800)
def test_bench_catchup_runs_the_landed_days_to_the_warehouse(tmp_path):
    results = _bench(tmp_path, "--only", "catchup", "--history", "1", "--history-scale", "0.002")
    catchup = results["measurements"]["catchup"]
    assert isinstance(catchup["met"], bool) and catchup["target"] and catchup["note"]
    demo, history = catchup["points"]
    assert (demo["days"], demo["weeks"], demo["scale"]) == (28, 4, 0.002)   # 28 days from a Sunday
    assert (history["days"], history["weeks"], history["scale"]) == (7, 1, 0.002)
    for point in (demo, history):
        assert point["seconds_per_day"] == pytest.approx(point["wall_seconds"] / point["days"], rel=0.01)
        assert point["runs"].get("weekly_job", 0) >= 1
