"""The Lambda handler against a real Dagster webserver, with a moto server standing in for S3.

Stand-ins: moto (a separate server process on 127.0.0.1) is S3, where the handler lists
the landed files; a real ``dagster-webserver`` started here on 127.0.0.1 (SQLite instance
in a temporary DAGSTER_HOME, default run coordinator so launched runs start without a
daemon) is the Dagster deployment whose GraphQL API the handler calls. No AWS Lambda
runtime: ``handler`` is called directly with Lambda-shaped events, and it is the copy
inside the deployment zip that is loaded.

Mirroring: the Dagster side reads a LOCAL lake directory (SALESPIPE_ENV=local), which
holds the same generated files that are uploaded to moto S3; the runs the handler
launches therefore stage those local copies with real Spark. The handler itself sees
only S3.

The tests run in order and share one lake, bucket and webserver.
"""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import importlib.util
import logging
import os
import signal
import sys
import threading
import time
import zipfile
from pathlib import Path

import boto3
import pytest

from salespipe_assets.datagen import generate
from salespipe_assets.resources.lake import DayFiles, LandedFile
from salespipe_assets.triggers.package import HANDLER_SOURCE, build_lambda_zip
from spark_steps.contract import TABLES
from tests.servers import free_port, moto_server, start, stop, wait_http

BUCKET = "salespipe-landing"
PREFIX = "lake"
D1, D2, D3, D4 = "2024-01-08", "2024-01-09", "2024-01-10", "2024-01-11"
INCOMPLETE_TABLE = "inventory"  # never uploaded for D3
TOKEN = "test-token-must-not-be-logged"
RUN_TIMEOUT = 480  # one daily_job run (code location load + a Spark application) on a busy machine

RUN_QUERY = """
query ($runId: ID!) { runOrError(runId: $runId) { __typename
  ... on Run { status tags { key value } }
  ... on PythonError { message } } }
"""
DAY_RUNS_QUERY = """
query ($filter: RunsFilter!) { runsOrError(filter: $filter) { __typename
  ... on Runs { results { runId status } } } }
"""
RUN_ERRORS_QUERY = """
query ($runId: ID!) { logsForRun(runId: $runId) { __typename
  ... on EventConnection { events { __typename ... on MessageEvent { message } } } } }
"""
LOCATION_QUERY = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name loadStatus
  locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""


def _load_deployed_handler(tmp: Path):
    """Build the deployment zip and import lambda_handler.py from its unpacked copy."""
    archive = build_lambda_zip(tmp / "salespipe-lambda.zip")
    with zipfile.ZipFile(archive) as zf:
        assert zf.namelist() == ["lambda_handler.py"]
        zf.extractall(tmp / "unpacked")
    spec = importlib.util.spec_from_file_location("deployed_lambda_handler", tmp / "unpacked" / "lambda_handler.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _wait_for_location(gql, proc, log: Path, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert proc.poll() is None, f"dagster-webserver exited:\n{log.read_text()[-3000:]}"
        entries = gql(LOCATION_QUERY)["workspaceOrError"].get("locationEntries", [])
        entry = next((e for e in entries if e["name"] == "salespipe"), None)
        if entry and entry["loadStatus"] == "LOADED":
            loaded = entry["locationOrLoadError"]
            assert loaded["__typename"] == "RepositoryLocation", loaded
            return
        time.sleep(1)
    raise TimeoutError(f"code location 'salespipe' not loaded:\n{log.read_text()[-3000:]}")


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _stop_webserver(proc) -> None:
    """The webserver starts its code server in a session of its own, out of reach of the
    process-group stop: end those processes by their PIDs too."""
    spawned = _descendants(proc.pid)
    stop(proc)
    for pid in spawned:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("lambda")
    lake = root / "lake"
    generate(lake, dt.date.fromisoformat(D1), 4, scale=0.001, seed=1, progress=False)
    (lake / "raw" / f"{INCOMPLETE_TABLE}_{D3}.csv.gz").unlink()
    handler_module = _load_deployed_handler(root)

    home = root / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\n"
        "run_coordinator:\n  module: dagster.core.run_coordinator\n  class: DefaultRunCoordinator\n")
    port = free_port()
    web_log = root / "webserver.log"
    bin_dir = Path(sys.executable).parent
    web = start([str(bin_dir / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                 "-w", str(Path(__file__).resolve().parent.parent / "workspace.yaml")],
                env={"DAGSTER_HOME": str(home), "SALESPIPE_ENV": "local", "SALESPIPE_LAKE": str(lake),
                     "SALESPIPE_WAREHOUSE": str(root / "warehouse.duckdb"),
                     "SALESPIPE_CATALOG": str(root / "catalog.duckdb")},
                log=web_log)
    try:
        with moto_server() as s3_url, pytest.MonkeyPatch.context() as mp:
            for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                                "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL_S3": s3_url,
                                "SALESPIPE_LAKE": f"s3://{BUCKET}/{PREFIX}",
                                "DAGSTER_GRAPHQL_URL": f"http://127.0.0.1:{port}/graphql",
                                "DAGSTER_GRAPHQL_TOKEN": TOKEN}.items():
                mp.setenv(name, value)
            mp.delenv("AWS_PROFILE", raising=False)
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=BUCKET)
            for day in (D1, D2, D3):
                _upload_day(s3, lake, day)
            wait_http(f"http://127.0.0.1:{port}/server_info", timeout=120, proc=web)
            gql = handler_module.DagsterGraphQL(f"http://127.0.0.1:{port}/graphql")
            _wait_for_location(gql, web, web_log)
            yield {"lake": lake, "s3": s3, "mod": handler_module, "gql": gql, "web_log": web_log}
    finally:
        _stop_webserver(web)
        sys.modules.pop("deployed_lambda_handler", None)


def _upload_day(s3, lake: Path, day: str) -> None:
    for table in TABLES:  # calendar last: its event is the one that completes the day
        path = lake / "raw" / f"{table}_{day}.csv.gz"
        if path.exists():
            s3.upload_file(str(path), BUCKET, f"{PREFIX}/raw/{path.name}")


def _s3_event(key: str) -> dict:
    """An S3 event notification as Lambda receives it (keys URL-encoded)."""
    return {"Records": [{
        "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
        "eventTime": "2024-01-09T06:00:00.000Z", "eventName": "ObjectCreated:Put",
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "salespipe-raw",
               "bucket": {"name": BUCKET, "arn": f"arn:aws:s3:::{BUCKET}"},
               "object": {"key": key, "size": 1, "eTag": "0", "sequencer": "0"}}}]}


SCHEDULED_EVENT = {
    "version": "0", "id": "a1b2c3", "detail-type": "Scheduled Event", "source": "aws.events",
    "account": "123456789012", "time": "2024-01-11T06:00:00Z", "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/salespipe-sweep"], "detail": {},
}


def _expected_fingerprint(lake: Path, day: str) -> str:
    """DayFiles' fingerprint over S3 ETags, which are the MD5 of a single-part upload."""
    files = {}
    for table in TABLES:
        path = lake / "raw" / f"{table}_{day}.csv.gz"
        files[table] = LandedFile(rel=f"raw/{path.name}", size=path.stat().st_size,
                                  fingerprint=hashlib.md5(path.read_bytes()).hexdigest())
    return DayFiles(day, files).fingerprint


def _runs_of(gql, day: str) -> list[dict]:
    result = gql(DAY_RUNS_QUERY, filter={"pipelineName": "daily_job",
                                         "tags": [{"key": "dagster/partition", "value": day}]})
    return result["runsOrError"]["results"]


def _wait_finished(env, run_id: str, timeout: float = RUN_TIMEOUT) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        run = env["gql"](RUN_QUERY, runId=run_id)["runOrError"]
        if run["status"] in ("SUCCESS", "FAILURE", "CANCELED"):
            return run
        time.sleep(2)
    raise TimeoutError(f"run {run_id} not finished after {timeout}s")


def _run_messages(env, run_id: str) -> str:
    events = env["gql"](RUN_ERRORS_QUERY, runId=run_id)["logsForRun"].get("events", [])
    return "\n".join(e.get("message", "") for e in events if e.get("message"))[-4000:]


def test_handler_imports_only_what_the_lambda_runtime_has():
    source = HANDLER_SOURCE.read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            imported.add(node.module.split(".")[0])
    outside = {m for m in imported if m not in sys.stdlib_module_names and m not in ("boto3", "botocore")}
    assert not outside, f"the Lambda runtime lacks {outside}"


def test_lambda_zip_is_byte_identical_across_builds(tmp_path):
    a = build_lambda_zip(tmp_path / "a.zip").read_bytes()
    b = build_lambda_zip(tmp_path / "b" / "b.zip").read_bytes()
    assert a == b


def test_handler_tables_match_the_contract(env):
    assert env["mod"].TABLES == TABLES


def test_object_created_for_the_last_file_launches_the_day(env, caplog):
    mod = env["mod"]
    with caplog.at_level(logging.INFO, logger="salespipe.lambda"):
        summary = mod.handler(_s3_event(f"{PREFIX}/raw/calendar_{D1}.csv.gz"), None)
    assert list(summary["launched"]) == [D1], summary
    run_id = summary["launched"][D1]

    run = _wait_finished(env, run_id)
    assert run["status"] == "SUCCESS", _run_messages(env, run_id)
    tags = {t["key"]: t["value"] for t in run["tags"]}
    assert tags["dagster/partition"] == D1
    assert tags["salespipe/trigger"] == "lambda"
    assert tags["salespipe/fingerprint"] == _expected_fingerprint(env["lake"], D1)
    assert list((env["lake"] / "staged" / "sales" / f"business_date={D1}").glob("*.parquet"))
    assert TOKEN not in caplog.text


def test_the_same_event_again_launches_nothing(env):
    summary = env["mod"].handler(_s3_event(f"{PREFIX}/raw/calendar_{D1}.csv.gz"), None)
    assert summary["launched"] == {}
    assert D1 in summary["already_running_or_done"]
    assert len(_runs_of(env["gql"], D1)) == 1


def test_an_incomplete_day_launches_nothing_and_names_what_is_missing(env, caplog):
    with caplog.at_level(logging.INFO, logger="salespipe.lambda"):
        summary = env["mod"].handler(_s3_event(f"{PREFIX}/raw/calendar_{D3}.csv.gz"), None)
    assert summary["launched"] == {}
    assert summary["incomplete"] == {D3: [f"missing {INCOMPLETE_TABLE}"]}
    assert _runs_of(env["gql"], D3) == []
    lines = [r.getMessage() for r in caplog.records if D3 in r.getMessage()]
    assert any(INCOMPLETE_TABLE in line and "no run launched" in line for line in lines), lines


def test_an_event_outside_the_lake_launches_nothing(env):
    summary = env["mod"].handler(_s3_event(f"elsewhere/raw/calendar_{D2}.csv.gz"), None)
    assert summary["launched"] == {} and summary["already_running_or_done"] == {}
    assert _runs_of(env["gql"], D2) == []


def test_scheduled_sweep_launches_only_complete_days_without_a_run(env):
    summary = env["mod"].handler(SCHEDULED_EVENT, None)
    assert list(summary["launched"]) == [D2], summary
    assert list(summary["already_running_or_done"]) == [D1]
    assert list(summary["incomplete"]) == [D3]

    run = _wait_finished(env, summary["launched"][D2])
    assert run["status"] == "SUCCESS", _run_messages(env, summary["launched"][D2])
    assert {t["key"]: t["value"] for t in run["tags"]}["dagster/partition"] == D2
    assert [len(_runs_of(env["gql"], d)) for d in (D1, D2, D3)] == [1, 1, 0]


def test_racing_invocations_leave_one_live_run(env):
    """Two invocations that both passed the 'no run yet' check launch at once: one yields."""
    mod, gql = env["mod"], env["gql"]
    _upload_day(env["s3"], env["lake"], D4)
    day = mod.S3Landing(f"s3://{BUCKET}/{PREFIX}").day(D4)
    assert day.complete
    barrier, results = threading.Barrier(2), []

    def invoke():
        barrier.wait()
        results.append(mod.launch_and_settle(gql, day, {}))

    threads = [threading.Thread(target=invoke) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 2
    kept = [run_id for run_id, yielded_to in results if yielded_to is None]
    yielded = [(run_id, yielded_to) for run_id, yielded_to in results if yielded_to is not None]
    assert len(kept) == 1 and len(yielded) == 1, results
    assert yielded[0][1] == kept[0]
    assert mod.live_runs(gql, D4, day.fingerprint) == kept

    # A later event for the day finds the surviving run.
    summary = mod.handler(_s3_event(f"{PREFIX}/raw/calendar_{D4}.csv.gz"), None)
    assert summary["already_running_or_done"] == {D4: kept[0]}
    assert _wait_finished(env, yielded[0][0])["status"] == "CANCELED"
    # The survivor is not needed for anything else here: stop it rather than wait for Spark.
    gql(mod.TERMINATE_MUTATION, runId=kept[0])
    assert _wait_finished(env, kept[0], timeout=120)["status"] == "CANCELED"


def test_graphql_client_sends_the_token_in_the_configured_header():
    import http.server
    import json

    seen = []

    class Capture(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.rfile.read(int(self.headers["Content-Length"]))
            body = json.dumps({"data": {"ok": True}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    from salespipe_assets.triggers.lambda_handler import DagsterGraphQL

    server = http.server.HTTPServer(("127.0.0.1", 0), Capture)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/graphql"
        assert DagsterGraphQL(url, "tok-1")("{ ok }") == {"ok": True}
        DagsterGraphQL(url, "tok-2", auth_header="Dagster-Cloud-Api-Token")("{ ok }")
        DagsterGraphQL(url)("{ ok }")
    finally:
        server.shutdown()
        server.server_close()
    assert seen[0]["authorization"] == "Bearer tok-1"
    assert seen[1]["dagster-cloud-api-token"] == "tok-2" and "authorization" not in seen[1]
    assert "authorization" not in seen[2] and "dagster-cloud-api-token" not in seen[2]


def test_event_shapes_the_handler_understands():
    from salespipe_assets.triggers.lambda_handler import event_objects

    direct = _s3_event(f"{PREFIX}/raw/my+folder%2Bx/sales_{D1}.csv")
    assert event_objects(direct) == [(BUCKET, f"{PREFIX}/raw/my folder+x/sales_{D1}.csv")]
    via_eventbridge = {"version": "0", "detail-type": "Object Created", "source": "aws.s3",
                       "detail": {"bucket": {"name": BUCKET}, "object": {"key": f"{PREFIX}/raw/sales_{D1}.csv"}}}
    assert event_objects(via_eventbridge) == [(BUCKET, f"{PREFIX}/raw/sales_{D1}.csv")]
    assert event_objects(SCHEDULED_EVENT) is None
    s3_test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET}
    assert event_objects(s3_test_event) == []
    removed = _s3_event(f"{PREFIX}/raw/sales_{D1}.csv")
    removed["Records"][0]["eventName"] = "ObjectRemoved:Delete"
    assert event_objects(removed) == []
