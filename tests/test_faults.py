"""Fault tests: what the pipeline does when something breaks, on small data.

What is real and what is simulated:

- SIGKILL mid-publish (real): the fact step runs as its own program
  (``python -m spark_steps.build_weekly_fact``, a real Spark JVM in a subprocess) and its
  whole process group gets SIGKILL as soon as Spark starts writing the new partition; the
  test checks the kill landed before the publish finished (retrying up to 3 times if
  not), and that no process of the group survives. Readers are the real ones: the DuckDB
  catalog (``DuckDBCatalog``), a pyarrow dataset and Spark. No hook in production code.
- A crash at every step of ``LakeFS.publish`` (simulated): a SIGKILL can only be aimed at
  the long Spark write, so the few milliseconds of renames after it are covered by a
  wrapper around the real pyarrow filesystem that dies at its n-th write operation (that
  call and every later one fail, as nothing runs after a kill), for every n, on real
  files read by the real DuckDB catalog and pyarrow.
- A corrupt file among good days (real): a generated lake, one truncated gzip, the whole
  pipeline through ``run_lake`` on a real (ephemeral) Dagster instance with Spark and
  DuckDB. tests/test_pipeline_e2e.py::test_bad_rows_and_a_bad_file already covers a wrong
  header on a new last day; this adds an undecodable file between two good days, across
  two weeks.
- An unwritable lake (real): a regular file where the partition's directory or the
  dataset's directory should be (this stops root too); a read-only directory (chmod 555),
  skipped when the tests run as root with CAP_DAC_OVERRIDE, which writes through it
  (``setpriv --bounding-set=-dac_override,-dac_read_search pytest ...`` runs it as root).
- A full disk (real where the kernel allows it): a 128 KB tmpfs, filled up, mounted over
  the fact's directory inside a user + mount namespace (``unshare``) where the fact step
  runs; skipped where unprivileged user namespaces are not available. The one-line
  reason taken from Spark's Java error is also checked on recorded error texts.
- Transient errors (real): another process holds the DuckDB warehouse file's lock while
  the weekly job's warehouse step runs; the asset's retry policy retries it with
  exponential backoff. The holder lets go only once the first retry is scheduled, so the
  test does not depend on timing. A lock that stays fails after max_retries.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import dagster as dg
import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from salespipe_assets.assets.warehouse import WAREHOUSE_FACT_KEY
from salespipe_assets.datagen import generate
from salespipe_assets.definitions import build_definitions
from salespipe_assets.reference import reference_fact
from salespipe_assets.resources.catalog import DuckDBCatalog
from salespipe_assets.resources.lake import LocalLake
from salespipe_assets.retries import SERVICE_RETRY_POLICY
from salespipe_assets.runner import Summary, build_weeks, run_lake, step_failure_message
from salespipe_assets.settings import PROJECT_ROOT, Settings
from spark_steps import build_weekly_fact, stage_file
from spark_steps.fact import FACT_COLUMNS
from spark_steps.lakefs import DATA_FILE, MANIFEST, SUCCESS, LakeFS, io_failure_reason

DATASET = "curated/weekly_sales_inventory"
START = dt.date(2024, 1, 13)   # Saturday 13 (week of Sun 7) and Sunday 14 (week of Sun 14)
FIRST_WEEK = "2024-01-07"      # never published before the kill
REPLACED_WEEK = "2024-01-14"   # published once from day 14's inventory, then rebuilt with its sales
SCALE = 0.002


def _partition(week: str) -> str:
    return f"{DATASET}/week_start={week}"


def _settings(root: Path, lake: Path) -> Settings:
    return Settings(env="local", lake=str(lake), warehouse=str(root / "warehouse.duckdb"),
                    catalog=str(root / "catalog.duckdb"), spark_master="local[2]",
                    partition_start="2020-01-05", partition_end=None)


# -- readers --------------------------------------------------------------------------

def _normalise(rows) -> list[tuple]:
    """Fact rows (dates as ISO strings) in one order: the keys come first in every row."""
    out = [tuple(v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v for v in r) for r in rows]
    return sorted(out, key=lambda r: tuple((v is None, str(v)) for v in r))


def _same_rows(a: list[tuple], b: list[tuple]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        for u, v in zip(x, y):
            if isinstance(u, float) and isinstance(v, float):
                if not math.isclose(u, v, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif u != v:
                return False
    return True


COLUMNS = [c for c in FACT_COLUMNS if c != "week_start"]


def _catalog_rows(lake: Path, week: str, database: Path) -> list[tuple]:
    """The week as the catalog shows it: the DuckDBCatalog view over the lake's Parquet."""
    visible = DuckDBCatalog(database=str(database)).register_fact_week(LocalLake(root=str(lake)), week)
    if not visible["rows_total"]:
        return []
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(f"SELECT {', '.join(COLUMNS)} FROM weekly_sales_inventory "
                           f"WHERE week_start = DATE '{week}'").fetchall()
    assert len(rows) == visible["rows_in_week"]
    return _normalise(rows)


def _pyarrow_rows(lake: Path, week: str) -> list[tuple]:
    """The week through a pyarrow dataset over the whole fact directory (Hive partitions)."""
    dataset = pads.dataset(str(lake / DATASET), format="parquet", partitioning="hive")
    table = dataset.to_table()
    if table.num_rows == 0:
        return []
    table = table.filter(pa.compute.equal(pa.compute.cast(table["week_start"], pa.string()), week))
    return _normalise(zip(*[table[c].to_pylist() for c in COLUMNS])) if table.num_rows else []


def _spark_rows(spark, lake: Path, week: str) -> list[tuple]:
    """The week as Spark reads the fact directory (partition discovery)."""
    df = spark.read.parquet(f"file://{lake / DATASET}").where(f"week_start = DATE '{week}'")
    return _normalise(tuple(r) for r in df.select(*COLUMNS).collect())


def _assert_whole_partition(lake: Path, week: str, allowed: dict[str, list[tuple]], database: Path,
                            spark=None) -> str:
    """Every reader sees exactly one of the ``allowed`` versions (the same one), the data
    file is readable whole, and when ``_SUCCESS`` is there the manifest describes the file.
    Returns the name of the version seen."""
    seen = {"catalog": _catalog_rows(lake, week, database), "pyarrow": _pyarrow_rows(lake, week)}
    if spark is not None:
        seen["spark"] = _spark_rows(spark, lake, week)
    names = {reader: [name for name, rows in allowed.items() if _same_rows(rows, got)]
             for reader, got in seen.items()}
    assert all(names.values()), f"a reader saw a version that is neither of {list(allowed)}: {names}"
    [version] = {n[0] for n in names.values()}  # all readers agree
    part = lake / _partition(week)
    visible_files = sorted(p.name for p in part.glob("*.parquet")) if part.exists() else []
    assert visible_files in ([], [DATA_FILE]), visible_files  # never a second or partial file
    if visible_files:
        assert pq.ParquetFile(part / DATA_FILE).metadata.num_rows == len(allowed[version])
    if (part / SUCCESS).exists():
        manifest = json.loads((part / MANIFEST).read_text())
        assert manifest["row_count"] == len(allowed[version]), "_SUCCESS next to a manifest of other data"
    return version


# -- a small staged lake, shared by the publishing tests --------------------------------

def _stage(spark, lake: Path, table: str, day: str) -> None:
    stage_file.run(spark, lake=str(lake), table=table, source=f"raw/{table}_{day}.csv.gz",
                   business_date=day, run_id="setup")


@pytest.fixture(scope="module")
def base_lake(tmp_path_factory, spark) -> Path:
    """Days 13 and 14 staged; week 14 published once from day 14's inventory only, before
    day 14's sales were staged (so its rebuild changes it); week 7 never published."""
    lake = tmp_path_factory.mktemp("faults") / "lake"
    generate(lake, START, 2, scale=SCALE, seed=11, progress=False)
    _stage(spark, lake, "inventory", "2024-01-13")
    _stage(spark, lake, "sales", "2024-01-13")
    _stage(spark, lake, "inventory", "2024-01-14")
    build_weekly_fact.run(spark, lake=str(lake), week_start=REPLACED_WEEK, run_id="old")
    _stage(spark, lake, "sales", "2024-01-14")
    return lake


@pytest.fixture(scope="module")
def clean_fact(base_lake, spark, tmp_path_factory):
    """week -> rows of a clean run: the same staged input, a lake that never saw a fault."""
    cache: dict[str, list[tuple]] = {}

    def rows(week: str) -> list[tuple]:
        if week not in cache:
            lake = tmp_path_factory.mktemp("clean") / "lake"
            shutil.copytree(base_lake / "staged", lake / "staged")
            build_weekly_fact.run(spark, lake=str(lake), week_start=week, run_id="clean")
            cache[week] = _pyarrow_rows(lake, week)
        return cache[week]
    return rows


def _copy(base: Path, tmp_path: Path) -> Path:
    lake = tmp_path / "lake"
    shutil.copytree(base, lake)
    return lake


def _manifest(lake: Path, week: str) -> dict | None:
    path = lake / _partition(week) / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def _staging_dirs(lake: Path) -> list[str]:
    return sorted(p.name for p in (lake / DATASET).glob(".tmp-*")) if (lake / DATASET).exists() else []


# -- 1. SIGKILL in the middle of publishing ------------------------------------------------

def _step_command(lake: Path, week: str, run_id: str) -> list[str]:
    return [sys.executable, "-m", "spark_steps.build_weekly_fact", "--lake", str(lake),
            "--week-start", week, "--run-id", run_id]


def _step_env() -> dict:
    # what spark-submit would be given: local mode, no UI, a small driver
    return {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1",
            "PYSPARK_SUBMIT_ARGS": "--master local[2] --driver-memory 1g --conf spark.ui.enabled=false pyspark-shell"}


def _kill_while_publishing(lake: Path, week: str, log: Path, timeout: float = 600) -> bool:
    """Start the step in its own process group; SIGKILL the group as soon as Spark has
    begun writing the new file (its staging directory appears). True when the kill
    landed before the publish finished (the staging directory, which the publish
    removes last, is still there, and the manifest is not the killed run's)."""
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the step
        proc = subprocess.Popen(_step_command(lake, week, "killed"), cwd=PROJECT_ROOT, env=_step_env(),
                                start_new_session=True, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    try:
        while proc.poll() is None and not _staging_dirs(lake):
            assert time.monotonic() < deadline, f"the step did not start writing in {timeout} s"
            time.sleep(0.002)
        if proc.poll() is not None:  # it ended before it was seen writing
            assert proc.returncode == 0, f"the step failed (exit {proc.returncode}):\n{log.read_text()[-3000:]}"
            return False
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        _wait_group_gone(proc.pid)
    assert proc.returncode == -signal.SIGKILL
    return bool(_staging_dirs(lake)) and (_manifest(lake, week) or {}).get("run_id") != "killed"


def _wait_group_gone(pgid: int) -> None:
    """The JVM and Python workers were in the group: none of them may survive."""
    for _ in range(500):
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.02)
    raise AssertionError(f"processes of group {pgid} survived SIGKILL")


@pytest.mark.slow
@pytest.mark.parametrize("week", [
    REPLACED_WEEK,
    # A first publish killed mid-write: `make test-heavy`. make test keeps the replacement
    # killed for real, and test_a_crash_at_any_step_of_the_publish_... crashes a first publish
    # at every step of the publish.
    pytest.param(FIRST_WEEK, marks=pytest.mark.heavy),
], ids=["replace", "first-publish"])
def test_sigkill_mid_publish_leaves_old_or_nothing_and_the_rerun_equals_a_clean_run(
        week, base_lake, clean_fact, spark, tmp_path):
    lake = _copy(base_lake, tmp_path)
    old = _pyarrow_rows(lake, week)
    assert bool(old) == (week == REPLACED_WEEK)
    other_week = FIRST_WEEK if week == REPLACED_WEEK else REPLACED_WEEK
    other = _pyarrow_rows(lake, other_week)
    new = clean_fact(week)
    assert new and not _same_rows(old, new)  # the rebuild really changes the partition
    old_manifest = _manifest(lake, week)

    for attempt in range(3):
        if _kill_while_publishing(lake, week, tmp_path / f"step-{attempt}.log"):
            break
        shutil.rmtree(lake)
        lake = _copy(base_lake, tmp_path)
    else:
        pytest.fail("could not kill the step before its publish finished in 3 attempts")

    # killed mid-publish: a staging directory is left, readers never read it
    assert _staging_dirs(lake)
    allowed = {"old": old, "new": new}
    version = _assert_whole_partition(lake, week, allowed, tmp_path / "catalog.duckdb", spark)
    # Spark was still writing when the kill landed, so the old version is what remains:
    # the complete old partition, or for a first publish none at all
    assert version == "old", "the kill landed after the new file was moved in"
    if week == FIRST_WEEK:
        assert old == [] and not (lake / _partition(week) / SUCCESS).exists()
    else:
        assert _manifest(lake, week) == old_manifest
    leftover = next((lake / DATASET).glob(".tmp-*"))
    assert not list((lake / DATASET).glob("week_start=*/.tmp-*"))
    # even the leftover's own Parquet files are invisible to the catalog's glob
    assert all(str(leftover) not in f for f in _catalog_files(lake))

    result = build_weekly_fact.run(spark, lake=str(lake), week_start=week, run_id="rerun")
    assert result["published"] and result["row_count"] == len(new)
    assert _assert_whole_partition(lake, week, allowed, tmp_path / "catalog.duckdb", spark) == "new"
    assert _manifest(lake, week)["run_id"] == "rerun" and (lake / _partition(week) / SUCCESS).exists()
    # the rerun's rows are those of a clean run, and the other week is untouched
    assert _same_rows(_pyarrow_rows(lake, week), new)
    assert _same_rows(_pyarrow_rows(lake, other_week), other)


def _catalog_files(lake: Path) -> list[str]:
    pattern = f"{lake}/{DATASET}/week_start=*/*.parquet"
    return [r[0] for r in duckdb.sql(f"SELECT file FROM glob('{pattern}')").fetchall()]


# -- 1b. a crash at every step of the publish itself (simulated) ---------------------------

class SimulatedCrash(BaseException):
    """Not an Exception: no ``except Exception`` cleanup runs, as none would after SIGKILL."""


class CrashingFS:
    """A pyarrow filesystem that dies at its n-th write operation: that operation and
    every later call fail, as nothing runs in a killed process."""

    WRITES = {"move", "delete_file", "delete_dir", "delete_dir_contents", "create_dir",
              "open_output_stream", "copy_file"}

    def __init__(self, real, crash_at: int):
        self._real, self._crash_at, self.writes, self.dead = real, crash_at, 0, False

    def __getattr__(self, name):
        attr = getattr(self._real, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            if self.dead:
                raise SimulatedCrash(name)
            if name in self.WRITES:
                self.writes += 1
                if self.writes == self._crash_at:
                    self.dead = True
                    raise SimulatedCrash(name)
            return attr(*args, **kwargs)
        return call


def _fact_table(n: int, marker: float) -> pa.Table:
    """n fact rows (without the week_start partition column) whose measures carry ``marker``."""
    d = pa.decimal128(38, 2)
    dec = [Decimal(f"{marker + i:.2f}") for i in range(n)]
    return pa.table({
        "week_end": pa.array([dt.date(2024, 1, 13)] * n, pa.date32()),
        "store_key": pa.array(range(n), pa.int32()), "prod_key": pa.array([1] * n, pa.int32()),
        "total_sales_qty": pa.array(dec, d), "total_sales_amt": pa.array(dec, d), "total_sales_cost": pa.array(dec, d),
        "avg_sales_price": pa.array([1.0] * n), "eow_stock_on_hand_qty": pa.array(dec, d),
        "eow_stock_on_order_qty": pa.array(dec, d), "no_stock_instances": pa.array([0] * n, pa.int32()),
        "low_stock_instances": pa.array([0] * n, pa.int32()), "total_low_stock_impact": pa.array([0] * n, pa.int32()),
        "in_stock_pct": pa.array([1.0] * n), "potential_low_stock_impact": pa.array([0.0] * n),
        "no_stock_impact": pa.array(dec, d), "weeks_of_supply": pa.array([marker] * n),
    })


def _spark_like_output(fs: LakeFS, final_rel: str, table: pa.Table) -> str:
    """What Spark leaves in the staging directory: one part file and its own _SUCCESS."""
    uri = fs.spark_output(final_rel)
    out = Path(uri.removeprefix("file://"))
    out.mkdir(parents=True)
    pq.write_table(table, out / "part-00000-4b1d.c000.snappy.parquet")
    (out / "_SUCCESS").touch()
    return uri


@pytest.mark.parametrize("first_publish", [False, True], ids=["replace", "first-publish"])
def test_a_crash_at_any_step_of_the_publish_leaves_a_whole_partition(first_publish, tmp_path):
    week = FIRST_WEEK
    final_rel = _partition(week)
    old_table, new_table = _fact_table(3, 100.0), _fact_table(5, 200.0)
    allowed = {"old": [] if first_publish else _normalise(zip(*[old_table[c].to_pylist() for c in COLUMNS])),
               "new": _normalise(zip(*[new_table[c].to_pylist() for c in COLUMNS]))}
    template = tmp_path / "template"
    fs = LakeFS(str(template))
    if not first_publish:
        fs.publish(_spark_like_output(fs, final_rel, old_table), final_rel, {"row_count": 3, "run_id": "old"})
    # another week, so that the catalog has a table even when this one is absent
    fs.publish(_spark_like_output(fs, _partition(REPLACED_WEEK), old_table), _partition(REPLACED_WEEK),
               {"row_count": 3, "run_id": "other"})

    seen_versions, crash_at = [], 1
    while True:
        lake = tmp_path / f"crash-{crash_at}"
        shutil.copytree(template, lake)
        fs = LakeFS(str(lake))
        written = _spark_like_output(fs, final_rel, new_table)
        crashing = CrashingFS(fs.fs, crash_at)
        fs.fs = crashing
        fs._filesystem_of = lambda uri, c=crashing: (c, uri.removeprefix("file://"))
        try:
            fs.publish(written, final_rel, {"row_count": 5, "run_id": "new"})
            finished = True
        except SimulatedCrash:
            finished = False
        version = _assert_whole_partition(lake, week, allowed, tmp_path / f"catalog-{crash_at}.duckdb")
        seen_versions.append(version)
        if finished:
            assert version == "new" and _manifest(lake, week)["run_id"] == "new"
            assert (lake / final_rel / SUCCESS).exists() and not _staging_dirs(lake)
            break
        # the rerun after the crash completes the partition
        LakeFS(str(lake)).publish(_spark_like_output(LakeFS(str(lake)), final_rel, new_table), final_rel,
                                  {"row_count": 5, "run_id": "rerun"})
        assert _assert_whole_partition(lake, week, allowed, tmp_path / f"catalog-{crash_at}.duckdb") == "new"
        assert _manifest(lake, week)["run_id"] == "rerun" and (lake / final_rel / SUCCESS).exists()
        crash_at += 1
    assert crash_at > 4, "the publish should take several file operations"
    assert seen_versions[0] == "old" and seen_versions[-1] == "new"


# -- 3. an unwritable lake, a full disk ---------------------------------------------------

def _weekly_build(lake: Path, root: Path, week: str):
    """``weekly_job`` for one week through the runner, as ``salespipe run`` does."""
    defs = build_definitions(_settings(root, lake))
    summary = Summary()
    with dg.DagsterInstance.ephemeral() as instance:
        build_weeks(defs, instance, [week], summary, trigger="test", progress=False)
    [outcome] = summary.weeks
    return outcome


def _snapshot(lake: Path) -> dict[str, bytes]:
    return {str(p.relative_to(lake)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(lake.rglob("*")) if "curated" in p.parts}


def _make_unwritable(how: str, lake: Path) -> Path:
    """Returns the path the error must name."""
    dataset, part = lake / DATASET, lake / _partition(FIRST_WEEK)
    if how == "partition-is-a-file":
        part.write_text("a file where the partition directory should be")
        return part
    if how == "dataset-is-a-file":
        shutil.rmtree(dataset)
        dataset.write_text("a file where the dataset directory should be")
        return dataset
    dataset.chmod(0o555)  # read-only
    return dataset


def _read_only_directories_stop_us() -> bool:
    """False for root with its usual capabilities: chmod does not stop it."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        os.chmod(d, 0o555)
        try:
            Path(d, "probe").touch()
            return False
        except PermissionError:
            return True
        finally:
            os.chmod(d, 0o755)


@pytest.mark.parametrize("how", [
    "partition-is-a-file",  # fails in LakeFS.publish, after Spark wrote its file
    "dataset-is-a-file",    # fails before Spark starts writing
    pytest.param("read-only-directory", marks=pytest.mark.skipif(
        not _read_only_directories_stop_us(),
        reason="running as root (with CAP_DAC_OVERRIDE), which writes into a read-only directory; "
               "the two file variants cover root")),
])
def test_unwritable_lake_fails_with_one_clear_line_and_no_partial_output(how, base_lake, tmp_path):
    lake = _copy(base_lake, tmp_path)
    target = _make_unwritable(how, lake)
    before = _snapshot(lake)
    try:
        outcome = _weekly_build(lake, tmp_path, FIRST_WEEK)
    finally:
        if how == "read-only-directory":
            (lake / DATASET).chmod(0o755)
    assert not outcome.ok
    [error] = outcome.errors
    assert "\n" not in error, error
    assert error.startswith(f"cannot publish file://{lake / _partition(FIRST_WEEK)}: "), error
    assert str(target) in error.split(": ", 1)[1], error  # the reason names what is in the way
    # nothing half written: the lake's curated zone is exactly as before (no staging
    # directory, no Parquet without manifest), and the catalog and warehouse never ran
    assert _snapshot(lake) == before
    assert set(outcome.metadata) == set()
    assert not (tmp_path / "warehouse.duckdb").exists()


# What Py4J hands Python when Spark's write fails (abridged from real runs)
PY4J_FULL_DISK = """An error occurred while calling o1251.parquet.
: org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in stage 96.0 failed 1 times, \
most recent failure: Lost task 0.0 in stage 96.0 (TID 62) (localhost executor driver): \
org.apache.spark.SparkException: [TASK_WRITE_FAILED] Task failed while writing rows to file:/lake/x/.tmp-1.
\tat org.apache.spark.sql.errors.QueryExecutionErrors$.taskFailedWhileWritingRowsError(QueryExecutionErrors.scala:774)
Caused by: org.apache.hadoop.fs.FSError: java.io.IOException: No space left on device
\tat org.apache.hadoop.fs.RawLocalFileSystem$LocalFSFileOutputStream.write(RawLocalFileSystem.java:336)
Caused by: java.io.IOException: No space left on device
\tat java.base/java.io.FileOutputStream.writeBytes(Native Method)
"""
PY4J_NOT_A_DIRECTORY = """An error occurred while calling o472.parquet.
: org.apache.hadoop.fs.ParentNotDirectoryException: Parent path is not a directory: file:/lake/curated/x
\tat org.apache.hadoop.fs.RawLocalFileSystem.mkdirsWithOptionalPermission(RawLocalFileSystem.java:814)
"""
PY4J_NOT_IO = """An error occurred while calling o99.parquet.
: org.apache.spark.SparkException: Job aborted due to stage failure: ... \
org.apache.spark.api.python.PythonException: Traceback (most recent call last): ZeroDivisionError
\tat org.apache.spark.api.python.BasePythonRunner.handlePythonException(PythonRunner.scala:572)
"""


def test_staging_directories_left_by_a_killed_writer_are_swept_later(tmp_path):
    """A SIGKILLed Spark step leaves its .tmp-* directory; the next write to the same dataset
    removes those older than a day and never a fresh one (a writer may still be using it)."""
    dataset = tmp_path / "curated" / "weekly_sales_inventory"
    old, fresh = dataset / ".tmp-0123456789ab", dataset / ".tmp-ba9876543210"
    for d in (old, fresh):
        (d / "_temporary").mkdir(parents=True)
        (d / "_temporary" / "part-00000.parquet").write_bytes(b"half")
    day_ago = time.time() - 25 * 3600
    os.utime(old, (day_ago, day_ago))
    LakeFS(str(tmp_path)).spark_output("curated/weekly_sales_inventory/week_start=2024-01-07")
    assert not old.exists() and fresh.exists()


@pytest.mark.parametrize("error, reason", [
    (Exception(PY4J_FULL_DISK), "No space left on device"),
    (Exception(PY4J_NOT_A_DIRECTORY), "Parent path is not a directory: file:/lake/curated/x"),
    (OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device"),
     "Error writing bytes to file (No space left on device)"),
    (PermissionError(13, "Permission denied", "/lake/x"), "Permission denied: '/lake/x'"),
    (Exception(PY4J_NOT_IO), None),  # not an I/O failure: re-raised as it is
])
def test_the_reason_of_a_failed_write_is_one_line(error, reason):
    """The one-line reason taken from Spark's (Java) and pyarrow's (OSError) errors; the
    full-disk test below meets the first for real where namespaces are available."""
    assert io_failure_reason(error) == reason


FULL_DISK_SCRIPT = textwrap.dedent("""\
    set -e
    mount -t tmpfs -o size=128k tmpfs "$DATASET"
    cp -a "$SAVED/." "$DATASET/"
    dd if=/dev/zero of="$DATASET/.filler" bs=4k 2>/dev/null || true
    set +e
    "$PYTHON" -m spark_steps.build_weekly_fact --lake "$LAKE" --week-start "$WEEK" --run-id full-disk \\
        > "$OUT/stdout" 2> "$OUT/stderr"
    echo $? > "$OUT/rc"
    rm -f "$DATASET/.filler"
    cp -a "$DATASET/." "$OUT/after/"
""")


def _user_namespaces_work() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            "mount -t tmpfs -o size=64k tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
# A real full disk costs a cold JVM of its own: `make test-heavy`. make test keeps the reason
# taken from the same Java error (test_the_reason_of_a_failed_write_is_one_line) and a crash
# at every step of the publish (test_a_crash_at_any_step_of_the_publish_leaves_a_whole_partition).
@pytest.mark.heavy
@pytest.mark.skipif(not _user_namespaces_work(),
                    reason="needs unprivileged user + mount namespaces (unshare) for a small tmpfs")
def test_full_disk_fails_with_one_clear_line_and_keeps_the_old_partition(base_lake, tmp_path, spark):
    """The fact directory is a full tmpfs (mounted in a namespace only the step sees)."""
    lake = _copy(base_lake, tmp_path)
    old = _pyarrow_rows(lake, REPLACED_WEEK)
    saved, out = tmp_path / "saved", tmp_path / "out"
    shutil.move(lake / DATASET, saved)
    (lake / DATASET).mkdir()
    (out / "after").mkdir(parents=True)
    env = {**_step_env(), "DATASET": str(lake / DATASET), "SAVED": str(saved), "OUT": str(out),
           "LAKE": str(lake), "WEEK": REPLACED_WEEK, "PYTHON": sys.executable}
    subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", FULL_DISK_SCRIPT],
                   cwd=PROJECT_ROOT, env=env, check=True, timeout=600)
    stderr = (out / "stderr").read_text()
    assert (out / "rc").read_text().strip() == "1", stderr[-3000:]
    last = stderr.strip().splitlines()[-1]
    assert last == (f"ERROR cannot publish file://{lake / _partition(REPLACED_WEEK)}: "
                    "No space left on device"), stderr[-3000:]
    # what the full disk holds afterwards: the old partition, whole, and nothing else
    (lake / DATASET).rmdir()
    shutil.copytree(out / "after", lake / DATASET)
    assert sorted(p.name for p in (lake / DATASET).iterdir()) == [f"week_start={REPLACED_WEEK}"]
    assert _assert_whole_partition(lake, REPLACED_WEEK, {"old": old}, tmp_path / "catalog.duckdb", spark) == "old"
    assert sorted(p.name for p in (lake / _partition(REPLACED_WEEK)).iterdir()) == [SUCCESS, MANIFEST, DATA_FILE]


# -- 2. one corrupt file among good days -------------------------------------------------

@pytest.mark.slow
def test_a_corrupt_file_fails_only_its_day_and_the_other_days_and_weeks_publish(spark, tmp_path):
    """Three days, Sat 13 (week 7), Sun 14 and Mon 15 (week 14); the middle day's sales file
    is a truncated gzip. Only day 14 fails, with one line naming the file and the reason;
    days 13 and 15 and both weeks publish, and the facts equal the reference
    implementation over what is left in raw/ (the bad file is quarantined)."""
    lake = tmp_path / "lake"
    generate(lake, START, 3, scale=SCALE, seed=5, progress=False)
    bad = lake / "raw" / "sales_2024-01-14.csv.gz"
    content = bad.read_bytes()
    bad.write_bytes(content[: len(content) // 2])
    defs = build_definitions(_settings(tmp_path, lake))
    with dg.DagsterInstance.ephemeral() as instance:
        summary = run_lake(defs, instance, defs.resources["lake"], progress=False)

    by_day = {o.partition: o for o in summary.days}
    assert sorted(by_day) == ["2024-01-13", "2024-01-14", "2024-01-15"]
    assert [d for d, o in by_day.items() if not o.ok] == ["2024-01-14"]
    assert summary.all_errors() == [
        "raw/sales_2024-01-14.csv.gz: truncated gzip: the compressed stream ends before its end marker"]
    # the file is set aside, whole, with its reason; nothing of it was staged
    assert (lake / "quarantine" / bad.name).read_bytes() == content[: len(content) // 2]
    why = json.loads((lake / "quarantine" / f"{bad.name}.reason.json").read_text())
    assert why["file"] == "raw/sales_2024-01-14.csv.gz" and why["reason"].startswith("truncated gzip")
    assert not (lake / "staged" / "sales" / "business_date=2024-01-14").exists()
    assert by_day["2024-01-14"].metadata["staged_inventory"]["rows_accepted"] > 0  # the day's good files
    # the good days and both weeks are published, in the lake and in the warehouse
    for day in ("2024-01-13", "2024-01-15"):
        assert (lake / "staged" / "sales" / f"business_date={day}" / SUCCESS).exists()
    assert [(o.partition, o.ok) for o in summary.weeks] == [(FIRST_WEEK, True), (REPLACED_WEEK, True)]
    reference = [r for r in reference_fact(lake / "raw").to_pylist()
                 if r["week_start"].isoformat() in (FIRST_WEEK, REPLACED_WEEK)]
    got = _normalise(tuple(r) for r in duckdb.sql(
        f"SELECT {', '.join(FACT_COLUMNS)} FROM read_parquet('{lake}/{DATASET}/week_start=*/*.parquet', "
        "hive_partitioning = true)").fetchall())
    assert _same_rows(got, _normalise(tuple(r[c] for c in FACT_COLUMNS) for r in reference))
    per_week = {w: sum(1 for r in reference if r["week_start"].isoformat() == w) for w in (FIRST_WEEK, REPLACED_WEEK)}
    assert all(per_week.values())
    assert {w: _manifest(lake, w)["row_count"] for w in per_week} == per_week
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        loaded = con.execute("SELECT week_start, count(*) FROM weekly_sales_inventory GROUP BY 1").fetchall()
    assert {w.isoformat(): n for w, n in loaded} == per_week


# -- 4. transient errors retried with backoff ---------------------------------------------

SERVICE_ASSETS = {"catalog__weekly_sales_inventory", "catalog_daily_tables", "warehouse__weekly_sales_inventory",
                  "warehouse_dimensions", "snowflake_source_export"}  # op names
SPARK_ASSETS = {"stage_day", "weekly_sales_inventory"}


def test_service_assets_retry_with_exponential_backoff_and_spark_steps_do_not():
    from salespipe_assets.assets.source_export import snowflake_source_export

    defs = build_definitions()
    assets = {a.node_def.name: a for a in [*defs.assets, snowflake_source_export] if isinstance(a, dg.AssetsDefinition)}
    assert SERVICE_ASSETS | SPARK_ASSETS <= set(assets)
    for name in SERVICE_ASSETS:
        assert assets[name].node_def.retry_policy == SERVICE_RETRY_POLICY, name
    for name in SPARK_ASSETS:  # a bad file fails the same way every time: never retried
        assert assets[name].node_def.retry_policy is None, name
    policy = SERVICE_RETRY_POLICY
    assert policy.max_retries == 3 and policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter is not None


WAREHOUSE_STEP = "warehouse__weekly_sales_inventory"
LOCK_HOLDER = "import duckdb, sys; con = duckdb.connect(sys.argv[1]); print('locked', flush=True); sys.stdin.read()"


def _hold_lock(database: Path) -> subprocess.Popen:
    """Another process with the DuckDB file open read-write (as a `salespipe query` session,
    Superset or a second run would): it holds the file lock until its stdin closes."""
    holder = subprocess.Popen([sys.executable, "-c", LOCK_HOLDER, str(database)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def _release(holder: subprocess.Popen) -> None:
    holder.stdin.close()
    holder.wait(timeout=30)
    holder.stdout.close()


def _published_fact_lake(tmp_path: Path, rows: int = 5) -> Path:
    """A lake with one published fact week (written by pyarrow: no Spark needed)."""
    lake = tmp_path / "lake"
    fs = LakeFS(str(lake))
    fs.publish(_spark_like_output(fs, _partition(REPLACED_WEEK), _fact_table(rows, 10.0)),
               _partition(REPLACED_WEEK), {"row_count": rows, "run_id": "setup"})
    return lake


def _step_events(instance, run_id: str) -> list:
    return [e.dagster_event for e in instance.all_logs(run_id)
            if e.dagster_event and e.dagster_event.step_key == WAREHOUSE_STEP]


def _of(events, kind: dg.DagsterEventType) -> list:
    return [e for e in events if e.event_type == kind]


def _run_warehouse_step(tmp_path: Path, lake: Path, instance, run_id: str):
    job = build_definitions(_settings(tmp_path, lake)).resolve_job_def("weekly_job")
    return job.execute_in_process(partition_key=REPLACED_WEEK, instance=instance, run_id=run_id,
                                  asset_selection=[WAREHOUSE_FACT_KEY], raise_on_error=False)


def _assert_backoff(retries: list) -> None:
    """Waits follow delay * (2^n - 1), n = 1, 2, 3, within the jitter of ±delay."""
    delay = SERVICE_RETRY_POLICY.delay
    for n, event in enumerate(retries, start=1):
        wait = event.event_specific_data.seconds_to_wait
        assert (2 ** n - 1) * delay - delay <= wait <= (2 ** n - 1) * delay + delay, (n, wait)


def test_a_locked_warehouse_is_retried_with_backoff_and_loads_once_released(tmp_path):
    lake = _published_fact_lake(tmp_path)
    holder = _hold_lock(tmp_path / "warehouse.duckdb")
    run_id = str(uuid.uuid4())
    outcome: dict = {}
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        runner = threading.Thread(target=lambda: outcome.update(
            result=_run_warehouse_step(tmp_path, lake, instance, run_id)))
        runner.start()
        try:
            deadline = time.monotonic() + 120
            while not _of(_step_events(instance, run_id), dg.DagsterEventType.STEP_UP_FOR_RETRY):
                assert runner.is_alive() and time.monotonic() < deadline, "the locked step was not retried"
                time.sleep(0.05)
        finally:
            _release(holder)  # the lock goes away once the first retry is scheduled
            runner.join(timeout=120)
        events = _step_events(instance, run_id)

    assert outcome["result"].success
    retries = _of(events, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert 1 <= len(retries) <= SERVICE_RETRY_POLICY.max_retries
    first_error = retries[0].event_specific_data.error.cause.message  # the policy's request wraps it
    assert f'Could not set lock on file "{tmp_path / "warehouse.duckdb"}"' in first_error
    assert len(_of(events, dg.DagsterEventType.STEP_RESTARTED)) == len(retries)
    assert len(_of(events, dg.DagsterEventType.STEP_SUCCESS)) == 1 and not _of(events, dg.DagsterEventType.STEP_FAILURE)
    _assert_backoff(retries)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM weekly_sales_inventory").fetchone()[0] == 5


def test_a_lock_that_stays_fails_after_max_retries_with_the_lock_error(tmp_path):
    lake = _published_fact_lake(tmp_path)
    holder = _hold_lock(tmp_path / "warehouse.duckdb")
    run_id = str(uuid.uuid4())
    try:
        with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
            started = time.monotonic()
            result = _run_warehouse_step(tmp_path, lake, instance, run_id)
            took = time.monotonic() - started
            events = _step_events(instance, run_id)
    finally:
        _release(holder)
    assert not result.success
    retries = _of(events, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    assert len(retries) == SERVICE_RETRY_POLICY.max_retries  # then it stops
    _assert_backoff(retries)
    assert took >= sum(r.event_specific_data.seconds_to_wait for r in retries)  # it really waited
    [failure] = _of(events, dg.DagsterEventType.STEP_FAILURE)
    # what `salespipe run` prints for it: the lock error, on one line, and that it was retried
    message = step_failure_message(failure.event_specific_data)
    assert "\n" not in message and message.endswith("(still failing after 3 retries)"), message
    assert f'Could not set lock on file "{tmp_path / "warehouse.duckdb"}": Conflicting lock is held' in message
