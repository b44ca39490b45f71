"""One real ``salespipe dev`` (Dagster webserver + daemon, landing sensor on) for the test
session, shared by the end-to-end and browser tests.

The lake's raw zone starts empty; the tests land days into it from a generated
"upstream" directory, the way files arrive in production, and follow the runs through
the webserver's GraphQL API. Partitions are bounded to the two generated weeks so the
UI's partition views show exactly those days.

The runs use the test session's Spark Connect server (``spark_remote`` in tests/conftest.py).
The fixture is registered once, in tests/conftest.py: a fixture imported into two test
modules would be two fixtures, and two servers.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import shutil
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from salespipe_assets.datagen import generate
from salespipe_assets.settings import PROJECT_ROOT
from tests.servers import free_port, start, stop, wait_http

FIRST_DAY = dt.date(2024, 1, 7)  # a Sunday: days 1-7 and 8-14 are the two weekly partitions
DAYS = 14
WEEKS = ["2024-01-07", "2024-01-14"]
E2E_DAY = "2024-01-09"  # landed by the end-to-end test (week 2024-01-07)
UI_DAY = "2024-01-16"  # landed for the browser tests (week 2024-01-14), with bad rows in its sales file
# Rows appended to the upstream sales file of UI_DAY, by the reason each must be rejected for.
BAD_SALES_ROWS = {
    "wrong_field_count": ["1,2,3", "738901999999002,100054"],
    "business_date_mismatch": ["738901999999001,100054,1002,2024-01-15,20458,1.00,2.49,2.49,0.00,1.62,0.87,0.00"],
}
LOCATION = "salespipe"
REPOSITORY = "__repository__"  # the name Dagster gives a Definitions object
SERVER_START_TIMEOUT = 420  # the machine is shared: the webserver can take minutes to load
RUN_TIMEOUT = 1200

_RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter) {
    __typename
    ... on Runs { results { runId status jobName startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}"""

_FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}


@dataclass
class DevServer:
    url: str
    lake: Path
    warehouse: Path
    home: Path
    upstream: Path
    log: Path
    proc: object = field(repr=False, default=None)

    # --- the server -------------------------------------------------------------------
    def graphql(self, query: str, variables: dict | None = None, timeout: float = 60) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        req = urllib.request.Request(f"{self.url}/graphql", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            payload = json.loads(resp.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, f"salespipe dev exited:\n{self.log_tail()}"

    # --- the lake -----------------------------------------------------------------------
    def land(self, day: str) -> list[str]:
        """Copy the day's five files into the lake's raw zone (like the upstream export);
        returns the names copied (none when the day was already landed)."""
        copied = []
        for src in sorted((self.upstream / "raw").glob(f"*_{day}.csv*")):
            target = self.lake / "raw" / src.name
            if not target.exists():
                shutil.copy(src, target.with_name(f".{src.name}.part"))
                target.with_name(f".{src.name}.part").rename(target)  # appears whole, as an upload does
                copied.append(src.name)
        assert copied or list((self.lake / "raw").glob(f"*_{day}.csv*")), f"no upstream files for {day}"
        return copied

    # --- runs -----------------------------------------------------------------------------
    def runs(self, **run_filter) -> list[dict]:
        data = self.graphql(_RUNS, {"filter": run_filter})["runsOrError"]
        assert data["__typename"] == "Runs", data
        for r in data["results"]:
            r["tags"] = {t["key"]: t["value"] for t in r["tags"]}
        return data["results"]

    def wait_until(self, condition, timeout: float = RUN_TIMEOUT, what: str = "the condition"):
        """Poll ``condition`` until it returns something truthy; return that."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.assert_alive()
            if value := condition():
                return value
            time.sleep(3)
        runs = [(r["jobName"], r["tags"].get("dagster/partition"), r["status"]) for r in self.runs()]
        raise TimeoutError(f"{what}: not within {timeout:.0f}s; runs: {runs}\n{self.log_tail()}")

    def wait_for_run(self, predicate, timeout: float = RUN_TIMEOUT, what: str = "a run") -> dict:
        """Wait until the runs matching ``predicate`` have all finished; return the newest."""
        def finished():
            matching = [r for r in self.runs() if predicate(r)]
            return matching[0] if matching and all(r["status"] in _FINISHED for r in matching) else None
        return self.wait_until(finished, timeout, what)

    def wait_idle(self, timeout: float = RUN_TIMEOUT, settle: float = 15) -> None:
        """Wait until no run is queued or in flight, and stays so for ``settle`` seconds
        (a finished day is followed by its week a sensor tick later)."""
        deadline = time.time() + timeout
        quiet_since = None
        while time.time() < deadline:
            self.assert_alive()
            busy = [r for r in self.runs() if r["status"] not in _FINISHED]
            if busy:
                quiet_since = None
            elif quiet_since is None:
                quiet_since = time.time()
            elif time.time() - quiet_since >= settle:
                return
            time.sleep(3)
        raise TimeoutError(f"runs still in flight after {timeout:.0f}s\n{self.log_tail()}")

    def week_built(self, week: str) -> dict | None:
        """The latest successful weekly run of ``week``, or None."""
        done = [r for r in self.runs(statuses=["SUCCESS"])
                if r["jobName"] == "weekly_job" and r["tags"].get("dagster/partition") == week]
        return done[0] if done else None


def _add_bad_sales_rows(upstream: Path) -> None:
    path = upstream / "raw" / f"sales_{UI_DAY}.csv.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    assert text.endswith("\n")
    extra = "".join(f"{row}\n" for rows in BAD_SALES_ROWS.values() for row in rows)
    path.write_bytes(gzip.compress((text + extra).encode()))


def _instance_config(home: Path) -> None:
    # The project's instance config, but one run at a time: the machine running the tests is
    # small and shared, and runs of different partitions would otherwise write the DuckDB
    # catalog and warehouse files at the same moment.
    text = (PROJECT_ROOT / "dagster.yaml").read_text()
    assert "max_concurrent_runs: 2" in text, "dagster.yaml changed: revisit the test override"
    (home / "dagster.yaml").write_text(text.replace("max_concurrent_runs: 2", "max_concurrent_runs: 1"))


_WORKSPACE = """
query { workspaceOrError { __typename ... on Workspace { locationEntries {
  name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _wait_loaded(server: DevServer, timeout: float) -> None:
    """/server_info answers before the code location is loaded; the UI needs the location."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        server.assert_alive()
        entries = server.graphql(_WORKSPACE)["workspaceOrError"].get("locationEntries", [])
        entry = next((e for e in entries if e["name"] == LOCATION), None)
        if entry and entry["loadStatus"] == "LOADED":
            assert entry["locationOrLoadError"]["__typename"] == "RepositoryLocation", entry
            return
        time.sleep(2)
    raise TimeoutError(f"code location {LOCATION} not loaded within {timeout:.0f}s\n{server.log_tail()}")


@contextmanager
def running_dev_server(root: Path, spark_remote: str | None = None) -> Iterator[DevServer]:
    """``spark_remote``: the runs use that Spark Connect server (the test session's) instead of
    the one ``salespipe dev`` would start."""
    upstream, lake, home = root / "upstream", root / "lake", root / "dagster_home"
    (lake / "raw").mkdir(parents=True)
    home.mkdir()
    _instance_config(home)
    generate(upstream, FIRST_DAY, DAYS, scale=0.001, seed=3, progress=False)
    _add_bad_sales_rows(upstream)
    last_day = FIRST_DAY + dt.timedelta(days=DAYS)
    port = free_port()
    salespipe = str(Path(sys.executable).parent / "salespipe")
    server = DevServer(url=f"http://127.0.0.1:{port}", lake=lake, warehouse=root / "warehouse.duckdb",
                       home=home, upstream=upstream, log=root / "dev.log")
    server.proc = start(
        [salespipe, "dev", "--lake", str(lake), "--warehouse", str(server.warehouse), "--port", str(port),
         "--sensor-interval", "2"],
        # No BI in these tests: the dashboard asset, once wired, records "skipped".
        env={"DAGSTER_HOME": str(home), "SALESPIPE_PARTITION_START": FIRST_DAY.isoformat(),
             "SALESPIPE_PARTITION_END": last_day.isoformat(), "SUPERSET_URL": "",
             **({"SALESPIPE_SPARK_REMOTE": spark_remote} if spark_remote else {})},
        log=server.log)
    try:
        wait_http(f"{server.url}/server_info", timeout=SERVER_START_TIMEOUT, proc=server.proc)
        _wait_loaded(server, SERVER_START_TIMEOUT)
        yield server
    finally:
        stop(server.proc)


_SESSION_SERVERS: list[DevServer] = []


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory, spark_remote) -> Iterator[DevServer]:
    with running_dev_server(tmp_path_factory.mktemp("dev"), spark_remote) as server:
        _SESSION_SERVERS.append(server)
        yield server


def stop_session_server() -> None:
    """Stop the session's server once its last test is done (tests/conftest.py): a daemon
    ticking on an idle lake costs a fifth of a core for the rest of the worker's tests."""
    for server in _SESSION_SERVERS:
        stop(server.proc)
