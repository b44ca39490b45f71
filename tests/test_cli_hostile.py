"""Hostile upstreams as the command line shows them (issue 18, points 4, 5, 7, 9 and 10):
one ``ERROR`` line per bad file, names printed escaped, no stack traces without
``--debug``; one ``salespipe run`` at a time per lake (a second exits at once naming the
holder's pid, ``--wait`` waits, a killed holder frees the lake); a new DAGSTER_HOME made by
several processes at once; a ``salespipe query`` never holds the catalog a run writes.

Real subprocesses of ``.venv/bin/salespipe``, real Spark local mode (one run, on one
small lake shared by the module), real DuckDB, real Dagster instances in temp homes."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from filelock import FileLock

from salespipe_assets.datagen import generate
from tests.test_cli import SALESPIPE, assert_one_line_error

LOCK = ".salespipe-run.lock"  # the lake lock the README documents


def _env(home: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESPIPE_")}
    return {**env, "DAGSTER_HOME": str(home), **extra}


def _default_signals() -> None:  # background shells here start children with SIGINT/SIGTERM ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def salespipe(*args: str, home: Path, timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run([SALESPIPE, *args], capture_output=True, text=True, timeout=timeout, env=_env(home, **env))


def start(*args: str, home: Path, **env: str) -> subprocess.Popen:
    return subprocess.Popen([SALESPIPE, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=_env(home, **env), preexec_fn=_default_signals)


def _wait_for(condition, what: str, timeout: float = 300.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the process ended first:\n{proc.communicate()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _holder_pid(lake: Path) -> int | None:
    try:
        return json.loads((lake / LOCK).read_text())["pid"]
    except (OSError, ValueError, KeyError):
        return None


def _settled(lake: Path) -> None:
    """Landed files an hour old: past any quiet period for files still being written."""
    old = time.time() - 3600
    for f in (lake / "raw").iterdir():
        os.utime(f, (old, old))


def _plain(path: Path) -> tuple[str, str]:
    """A generated .csv.gz replaced by its plain .csv: (header, the rest)."""
    text = gzip.decompress(path.read_bytes()).decode()
    path.unlink()
    header, rest = text.split("\n", 1)
    return header, rest


# -- points 4 and 10, and 5 with a real run: one lake, one run ----------------------------

BAD_DAY, GOOD_DAY = "2024-01-07", "2024-01-08"
NEWLINE_NAME = "sales_2024-01-09.csv\n"


@pytest.fixture(scope="module")
def hostile_lake(tmp_path_factory) -> Path:
    """Two days. On the bad day the sales header has a stray carriage return inside a column
    name and the inventory header names a wrong column: two bad files of one day. The good
    day is whole. And a file whose name ends in a newline."""
    lake = tmp_path_factory.mktemp("hostile") / "lake"
    generate(lake, dt.date(2024, 1, 7), 2, scale=0.001, seed=3, progress=False)
    raw = lake / "raw"
    header, rest = _plain(raw / f"sales_{BAD_DAY}.csv.gz")
    assert ",prod_key," in header
    (raw / f"sales_{BAD_DAY}.csv").write_text(header.replace(",prod_key,", ",prod\r_key,") + "\n" + rest)
    header, rest = _plain(raw / f"inventory_{BAD_DAY}.csv.gz")
    assert ",store_key," in header
    (raw / f"inventory_{BAD_DAY}.csv").write_text(header.replace(",store_key,", ",shop_key,", 1) + "\n" + rest)
    (raw / NEWLINE_NAME).write_bytes(gzip.decompress((raw / f"sales_{GOOD_DAY}.csv.gz").read_bytes()))
    _settled(lake)
    return lake


@pytest.fixture(scope="module")
def concurrent_runs(hostile_lake, tmp_path_factory) -> dict:
    """A real `salespipe run`; while it holds the lake, a second one and a `--wait` one."""
    home = tmp_path_factory.mktemp("hostile_home")
    first = start("run", "--lake", str(hostile_lake), "--quiet", home=home)
    try:
        _wait_for(lambda: _holder_pid(hostile_lake) == first.pid, "the first run to hold the lake", proc=first)
        second = salespipe("run", "--lake", str(hostile_lake), "--quiet", home=home)
        waiting = start("run", "--lake", str(hostile_lake), "--quiet", "--wait", home=home)
        first_out, first_err = first.communicate(timeout=1500)
        waiting_out, waiting_err = waiting.communicate(timeout=600)
    finally:
        for proc in (first, locals().get("waiting")):
            if proc is not None and proc.poll() is None:
                proc.kill()
    return {"first": (first.pid, first.returncode, first_out, first_err), "second": second,
            "waiting": (waiting.returncode, waiting_out, waiting_err)}


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("ERROR ")]


@pytest.mark.slow
def test_every_bad_file_of_a_day_gets_its_own_error_line(concurrent_runs):
    _, code, out, err = concurrent_runs["first"]
    assert code == 1, out + err
    assert "days processed: 2 (1 ok, 1 failed)" in out, out
    errors = _error_lines(err)
    for bad in (f"raw/sales_{BAD_DAY}.csv", f"raw/inventory_{BAD_DAY}.csv"):
        naming = [line for line in errors if line.startswith(f"ERROR {bad}:")]
        assert len(naming) == 1, f"{bad}: {errors}"
    # a person can act on it: the inventory file's reason says what is wrong with it
    [inventory] = [line for line in errors if line.startswith(f"ERROR raw/inventory_{BAD_DAY}.csv:")]
    assert "header" in inventory or "shop_key" in inventory, inventory


@pytest.mark.slow
def test_error_lines_are_one_line_each_with_names_escaped_and_no_stack_trace(concurrent_runs):
    _, _, out, err = concurrent_runs["first"]
    names = re.compile(rf"(sales|inventory)_{BAD_DAY}|sales_2024-01-09")
    for line in err.splitlines():
        if names.search(line):  # no continuation line: each one is an ERROR line of its own
            assert line.startswith("ERROR "), f"not an ERROR line: {line!r}\n{err}"
    [newline] = [line for line in _error_lines(err) if "sales_2024-01-09.csv" in line]
    assert newline.startswith("ERROR raw/sales_2024-01-09.csv\\n"), newline  # the newline, escaped
    for trace in ("Traceback", "Stack Trace", "DagsterExecutionStepExecutionError", "\tat org.apache"):
        assert trace not in err, err


@pytest.mark.slow
def test_a_second_run_on_a_held_lake_exits_at_once_naming_the_holder(concurrent_runs, hostile_lake):
    pid = concurrent_runs["first"][0]
    line = assert_one_line_error(concurrent_runs["second"], "another salespipe run", f"pid {pid}", "--wait")
    assert str(hostile_lake.resolve()) in line


@pytest.mark.slow
def test_a_waiting_run_says_so_then_runs_after_the_holder(concurrent_runs):
    pid = concurrent_runs["first"][0]
    code, out, err = concurrent_runs["waiting"]
    assert code == 0, out + err
    assert any(line.startswith("waiting:") and f"pid {pid}" in line for line in err.splitlines()), err
    # it started after the holder was done: the bad day's files are already quarantined
    assert f"incomplete {BAD_DAY}: missing sales; missing inventory" in out, out
    assert "0 failed" in out, out


# -- point 5 without Spark: a killed holder frees the lake ---------------------------------

HOLD = """
import sys, time
from salespipe_assets.run_lock import holding_lake
with holding_lake(sys.argv[1], sys.argv[2], "a test holder"):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_frees_the_lake(tmp_path):
    lake, home = tmp_path / "lake", tmp_path / "home"
    (lake / "raw").mkdir(parents=True)
    home.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(lake.resolve()), str(home)],
                              stdout=subprocess.PIPE, text=True, preexec_fn=_default_signals)
    try:
        assert holder.stdout.readline().strip() == "held"
        busy = salespipe("run", "--lake", str(lake), home=home)
        assert_one_line_error(busy, "another salespipe run", f"pid {holder.pid}")
    finally:
        holder.kill()  # SIGKILL: no cleanup runs, the kernel drops the lock
        holder.wait()
    free = salespipe("run", "--lake", str(lake), home=home)
    assert free.returncode == 0, free.stdout + free.stderr
    assert "days processed: 0" in free.stdout


# -- point 9: a brand-new DAGSTER_HOME made by several processes at once -------------------

MAKE_INSTANCE = """
import sys, time
from pathlib import Path
import dagster  # imported before the start: the processes race at the instance, not the import
from salespipe_assets.run_lock import open_instance
ready, go = Path(sys.argv[1]), Path(sys.argv[2])
ready.touch()  # imported: waiting for the others
while not go.exists():  # all start at the same instant
    time.sleep(0.005)
with open_instance() as instance:
    instance.get_runs_count()
print("ok")
"""


def test_processes_creating_a_new_dagster_home_at_once_all_succeed(tmp_path):
    """Three processes create one new DAGSTER_HOME at the same instant, three times over
    (three homes, all nine processes released together once every one has imported)."""
    project_yaml = (Path(__file__).parent.parent / "dagster.yaml").read_text()
    go = tmp_path / "go"
    procs, ready = [], []
    for round_ in range(3):
        home = tmp_path / f"home{round_}"
        home.mkdir()
        (home / "dagster.yaml").write_text(project_yaml)
        for n in range(3):
            ready.append(tmp_path / f"ready-{round_}-{n}")
            procs.append(subprocess.Popen([sys.executable, "-c", MAKE_INSTANCE, str(ready[-1]), str(go)],
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env(home)))
    try:
        _wait_for(lambda: all(r.exists() for r in ready), "every process to import", 300)
    finally:
        go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0 and out.strip() == "ok", err[-2000:]


# -- point 7: a query never holds the catalog a run writes -------------------------------

def _catalog_lake(tmp_path: Path):
    """A lake with one staged day (3 rows) registered in its catalog, as the catalog asset does."""
    from salespipe_assets.resources.catalog import DuckDBCatalog
    from salespipe_assets.resources.lake import LocalLake

    lake = tmp_path / "lake"
    (lake / "raw").mkdir(parents=True)
    part = lake / "staged" / "sales" / "business_date=2024-01-07"
    part.mkdir(parents=True)
    duckdb.sql(f"COPY (SELECT range AS sales_qty FROM range(3)) TO '{part / 'part-00000.parquet'}' (FORMAT parquet)")
    catalog = DuckDBCatalog(database=str(lake / "catalog.duckdb"))
    assert catalog.register_tables(LocalLake(root=str(lake)), ["staged_sales"]) == {"staged_sales": 3}
    return lake, catalog, LocalLake(root=str(lake))


def _opened(pid: int, name: str) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fd).endswith(f"/{name}") for fd in fds.iterdir())
    except OSError:
        return False


def test_the_catalog_is_written_while_a_long_query_runs(tmp_path):
    lake, catalog, local_lake = _catalog_lake(tmp_path)
    (tmp_path / "tmp").mkdir()
    endless = "SELECT sum(s.sales_qty * r.range) FROM staged_sales s, range(1000000000000) r"
    query = start("query", "--lake", str(lake), endless, home=tmp_path / "home", TMPDIR=str(tmp_path / "tmp"))
    try:
        # the query is running once its process has a catalog file open (the catalog, or its copy)
        _wait_for(lambda: _opened(query.pid, "catalog.duckdb"), "the query to open the catalog", 120, proc=query)
        time.sleep(1)
        more = lake / "staged" / "sales" / "business_date=2024-01-08"
        more.mkdir()
        duckdb.sql(f"COPY (SELECT range AS sales_qty FROM range(4)) TO '{more / 'part-00000.parquet'}' (FORMAT parquet)")
        started = time.monotonic()
        assert catalog.register_tables(local_lake, ["staged_sales"]) == {"staged_sales": 3 + 4}
        assert time.monotonic() - started < 30  # it did not wait for the query
        assert query.poll() is None  # ... which is still running
    finally:
        query.kill()
        query.wait()
    with duckdb.connect(str(lake / "catalog.duckdb"), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM staged_sales").fetchone() == (7,)


def test_a_query_that_cannot_get_in_says_so_in_one_line(tmp_path):
    lake, _, _ = _catalog_lake(tmp_path)
    with FileLock(f"{lake / 'catalog.duckdb'}.lock"):  # a writer that does not let go
        busy = salespipe("query", "--lake", str(lake), "SELECT count(*) FROM staged_sales",
                         home=tmp_path / "home", SALESPIPE_QUERY_WAIT_SECONDS="1")
    assert_one_line_error(busy, "catalog", "busy", "try again")
    ok = salespipe("query", "--lake", str(lake), "--format", "json", "SELECT count(*) AS n FROM staged_sales",
                   home=tmp_path / "home")
    assert ok.returncode == 0 and json.loads(ok.stdout) == [{"n": 3}], ok.stdout + ok.stderr


# -- points 4 and 10 at the step: what a failed step reduces to ----------------------------

def test_a_failed_step_reduces_to_one_line_per_file_or_its_innermost_error():
    """Real step failures on a real (ephemeral) instance: a description naming two files
    gives two lines; an error no asset explained gives its innermost cause, not Dagster's
    'Error occurred while executing op' wrapper."""
    import csv

    import dagster as dg

    from salespipe_assets.runner import step_failure_lines, step_failure_message

    files = ["raw/sales_2024-01-07.csv: wrong header", "raw/inventory_2024-01-07.csv: empty file: no header row"]

    @dg.asset
    def described():
        raise dg.Failure(description="\n".join(files), allow_retries=False)

    @dg.asset
    def undescribed():
        next(csv.reader(["store_key,pro\rd_key"]))  # what a stray CR in a header does to csv

    try:
        next(csv.reader(["store_key,pro\rd_key"]))
        raise AssertionError("csv accepted a lone CR")
    except csv.Error as exc:
        innermost = f"_csv.Error: {exc}"
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([described, undescribed], instance=instance, raise_on_error=False)
    failed = {e.step_key: e.event_specific_data for e in result.all_events
              if e.event_type == dg.DagsterEventType.STEP_FAILURE}
    assert step_failure_lines(failed["described"], "described") == files
    assert step_failure_message(failed["described"]) == "; ".join(files)  # one line
    assert step_failure_message(failed["undescribed"]) == innermost
