"""The whole pipeline on a real Spark standalone cluster gives the lake local mode gives.

Nothing is faked: a Spark master and two workers (one core, 1 GiB each) are started on
127.0.0.1 from pyspark's own ``sbin/spark-daemon.sh`` and stopped by the PIDs in their
pid files; ``salespipe run --spark-master spark://127.0.0.1:PORT`` runs in a separate
process (a JVM holds one SparkContext, and this test process already has the local one),
and the same landing files run in local mode in this process. The lake is a local
directory, which the workers on this machine see as the driver does (pyspark's pip
package has no S3 connector).
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import duckdb
import pyspark
import pytest

from salespipe_assets.datagen import generate
from salespipe_assets.definitions import build_definitions
from salespipe_assets.runner import run_lake
from salespipe_assets.settings import Settings
from salespipe_assets.spark_server import terminate
from tests.servers import _restore_signals, free_port

START, DAYS = dt.date(2024, 1, 14), 1  # Sun 14: a day and its week
SPARK_HOME = Path(pyspark.__file__).parent
DATASETS = [  # (glob under the lake, ORDER BY) of every dataset the pipeline publishes
    ("curated/weekly_sales_inventory/*/*.parquet", "week_start, store_key, prod_key"),
    ("staged/sales/*/*.parquet", "business_date, source_line"),
    ("staged/inventory/*/*.parquet", "business_date, source_line"),
    ("rejects/sales/*/*.parquet", "business_date, line_number"),
    ("curated/store/*.parquet", "ALL"),
    ("curated/product/*.parquet", "ALL"),
    ("curated/calendar/*.parquet", "ALL"),
]


def _daemon(env: dict, action: str, cls: str, instance: int, *args: str) -> None:
    # The daemons inherit the default signal handlers, so SIGTERM stops them.
    subprocess.run(["bash", str(SPARK_HOME / "sbin" / "spark-daemon.sh"), action, cls, str(instance), *args],
                   env=env, check=True, preexec_fn=_restore_signals, capture_output=True, timeout=120)


def _master_state(ui_port: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{ui_port}/json/", timeout=5) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def standalone_cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("standalone")
    port, ui = free_port(), free_port()
    env = {**os.environ, "SPARK_HOME": str(SPARK_HOME), "SPARK_PID_DIR": str(root / "pids"),
           "SPARK_LOG_DIR": str(root / "logs"), "SPARK_IDENT_STRING": f"salespipe-test-{port}",
           "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable,
           "SPARK_DAEMON_MEMORY": "512m"}
    url = f"spark://127.0.0.1:{port}"
    pid_files = []
    try:
        _daemon(env, "start", "org.apache.spark.deploy.master.Master", 1,
                "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui))
        pid_files.append(root / "pids" / f"spark-{env['SPARK_IDENT_STRING']}-org.apache.spark.deploy.master.Master-1.pid")
        for n in (1, 2):
            _daemon(env, "start", "org.apache.spark.deploy.worker.Worker", n, url, "--host", "127.0.0.1",
                    "--webui-port", str(free_port()), "--cores", "1", "--memory", "1g",
                    "--work-dir", str(root / f"work{n}"))
            pid_files.append(root / "pids" / f"spark-{env['SPARK_IDENT_STRING']}-org.apache.spark.deploy.worker.Worker-{n}.pid")
        deadline = time.time() + 120
        while True:
            try:
                if _master_state(ui).get("aliveworkers") == 2:
                    break
            except OSError:
                pass
            if time.time() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in (root / "logs").glob("*.out"))
                raise TimeoutError(f"the standalone cluster did not come up with two workers:\n{logs}")
            time.sleep(0.5)
        yield {"url": url, "ui_port": ui, "work_dirs": [root / "work1", root / "work2"]}
    finally:
        for pid_file in reversed(pid_files):
            if pid_file.exists():
                terminate(int(pid_file.read_text().strip()))


def _landing(lake: Path) -> None:
    generate(lake, START, DAYS, scale=0.002, seed=5, progress=False)
    sales = lake / "raw" / "sales_2024-01-14.csv.gz"
    text = gzip.decompress(sales.read_bytes()).decode()
    bad = ["9000000002,1,1,2024-01-14,1,-1.00,1.00,1.00,0,1,0,0",  # negative quantity
           "9000000003,1,1,2024-01-14,1,abc,1.00,1.00,0,1,0,0"]    # unparseable
    sales.write_bytes(gzip.compress((text + "\n".join(bad) + "\n").encode(), mtime=0))


def _published(lake: Path) -> dict[str, list[tuple]]:
    out = {}
    for pattern, order in DATASETS:
        out[pattern] = duckdb.sql(f"SELECT * EXCLUDE (filename) FROM read_parquet('{lake}/{pattern}', "
                                  f"hive_partitioning = true, filename = true) ORDER BY {order}").fetchall()
    return out


def _row_counts(lake: Path) -> dict[str, int]:
    counts = {}
    for manifest in sorted(lake.glob("**/_manifest.json")):
        counts[str(manifest.parent.relative_to(lake))] = json.loads(manifest.read_text())["row_count"]
    return counts


@pytest.mark.slow
@pytest.mark.heavy  # a cluster of five JVMs, about 150 CPU-seconds: `make test-heavy`
def test_pipeline_on_a_standalone_cluster_equals_local_mode(standalone_cluster, spark, tmp_path):
    local_lake, cluster_lake = tmp_path / "local" / "lake", tmp_path / "cluster" / "lake"
    _landing(local_lake)
    shutil.copytree(local_lake, cluster_lake)

    # local mode, in this process (the session's local SparkSession)
    settings = Settings(env="local", lake=str(local_lake), warehouse=str(tmp_path / "local" / "warehouse.duckdb"),
                        catalog=str(tmp_path / "local" / "catalog.duckdb"), spark_master="local[2]",
                        partition_start="2020-01-05", partition_end=None)
    defs = build_definitions(settings)
    (tmp_path / "local" / "dagster_home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "local" / "dagster_home")) as instance:
        summary = run_lake(defs, instance, defs.resources["lake"], progress=False)
    assert summary.ok, summary.all_errors()

    # the standalone cluster, through the command line, in its own process
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "cluster" / "dagster_home"), "SPARK_LOCAL_IP": "127.0.0.1",
           "PYSPARK_PYTHON": sys.executable}
    for name in ("SALESPIPE_LAKE", "SALESPIPE_WAREHOUSE", "SALESPIPE_CATALOG", "SALESPIPE_SPARK_MASTER"):
        env.pop(name, None)
    command = [str(Path(sys.executable).with_name("salespipe")), "run", "--lake", str(cluster_lake),
               "--spark-master", standalone_cluster["url"], "--quiet"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900,
                          preexec_fn=_restore_signals)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "weeks built: 1 (1 ok)" in done.stdout, done.stdout

    # the work really ran on the cluster: an application, executors on both workers
    apps = _master_state(standalone_cluster["ui_port"])["completedapps"]
    assert [a["name"] for a in apps] == ["salespipe"]
    for work_dir in standalone_cluster["work_dirs"]:
        assert list(work_dir.glob(f"{apps[0]['id']}/*/stderr")), f"no executor ran in {work_dir}"

    local, distributed = _published(local_lake), _published(cluster_lake)
    assert local["curated/weekly_sales_inventory/*/*.parquet"], "local mode published no fact"
    assert len(local["rejects/sales/*/*.parquet"]) == 2
    for pattern, _ in DATASETS:
        assert distributed[pattern] == local[pattern], pattern
    assert _row_counts(cluster_lake) == _row_counts(local_lake)
