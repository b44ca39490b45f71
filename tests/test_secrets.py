"""No credential ever appears in event logs, run logs, asset metadata, error messages or the lake.

One canary value is put in every credential variable the project reads; the real pipeline
then runs on a tiny generated lake with the Snowflake warehouse on a fakesnow server (so
the Snowflake password is really used) and the dashboard asset logging in to a stand-in
Superset (so its password is really sent). A second round fails on purpose: a private key
that is not a key (the Snowflake resource switches to key-pair authentication) and a file
with a wrong header, so error messages are produced next to the secrets. Then everything
the runs left is scanned for the canary: every event of every run (logs, metadata, check
results, failures) serialized, the runs' tags and config, every file under DAGSTER_HOME
(SQLite storage, compute logs), every file of the lake (manifests, quarantine reasons,
Parquet), the run summaries' errors and metadata, and what
the test process wrote to stdout/stderr. A second test shows the scan does find the canary
when it is planted, so the first one can fail.
"""

import datetime as dt
import gzip
import http.server
import json
import secrets
import threading
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster_snowflake import SnowflakeResource

from salespipe_assets.datagen import generate
from salespipe_assets.definitions import build_definitions
from salespipe_assets.runner import run_lake
from salespipe_assets.settings import Settings
from tests.servers import free_port
from tests.test_snowflake_warehouse import fakesnow_server

CANARY = f"canary-{secrets.token_hex(12)}"
# Every credential variable the project reads (dg.EnvVar / os.environ in salespipe_assets).
PASSWORD_VARIABLES = ["SNOWFLAKE_PASSWORD", "SUPERSET_ADMIN_PASSWORD", "AWS_SECRET_ACCESS_KEY",
                      "AWS_SESSION_TOKEN", "DAGSTER_GRAPHQL_TOKEN"]
# Set, these switch Snowflake to key-pair authentication: the second, failing round.
KEY_VARIABLES = ["SNOWFLAKE_PRIVATE_KEY", "SNOWFLAKE_PRIVATE_KEY_PASSWORD"]
SCALE = 0.002


# -- the scan ---------------------------------------------------------------------------------

def canary_sightings(canary: str, instance: dg.DagsterInstance, roots: list[Path], texts: dict[str, str]) -> list[str]:
    """Where ``canary`` appears: runs' events, tags and config, files under ``roots``, ``texts``."""
    found = []
    for run in instance.get_runs():
        for record in instance.all_logs(run.run_id):
            if canary in dg.serialize_value(record):
                found.append(f"run {run.run_id} event {record.dagster_event_type or 'log'}: "
                             f"{record.user_message[:200]!r}")
        if canary in dg.serialize_value(run):
            found.append(f"run {run.run_id} (tags, config or op selection)")
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if canary.encode() in data:
                found.append(str(path))
    found += [name for name, text in texts.items() if canary in text]
    return found


def failures(instance: dg.DagsterInstance, run_id: str) -> str:
    """Every step and run failure of a run, serialized (errors with their causes)."""
    return "\n".join(dg.serialize_value(r) for r in instance.all_logs(run_id)
                     if r.dagster_event_type in (dg.DagsterEventType.STEP_FAILURE, dg.DagsterEventType.RUN_FAILURE))


# -- a stand-in Superset that refuses every login -------------------------------------------

@contextmanager
def refusing_superset():
    """Answers /health; refuses /api/v1/security/login with 401 and records the passwords sent."""
    received: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._answer(200, {"status": "OK"}) if self.path == "/health" else self._answer(404, {})

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path == "/api/v1/security/login":
                received.append(body.get("password", ""))
                self._answer(401, {"message": "Not authorized"})
            else:
                self._answer(404, {})

        def log_message(self, *args):  # keep the test output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


# -- the pipeline with every credential holding the canary -----------------------------------------

@pytest.mark.slow
def test_no_credential_reaches_logs_metadata_errors_or_the_lake(spark, tmp_path, monkeypatch, capfd):
    lake, home = tmp_path / "lake", tmp_path / "dagster_home"
    home.mkdir()
    settings = Settings(env="local", lake=str(lake), warehouse=str(tmp_path / "unused.duckdb"),
                        catalog=str(tmp_path / "catalog.duckdb"), spark_master="local[2]",
                        partition_start="2020-01-05", partition_end=None, warehouse_kind="snowflake")
    summaries = {}
    with fakesnow_server() as snow_port, refusing_superset() as (superset_url, superset_logins):
        for name, value in {"SNOWFLAKE_ACCOUNT": "fakesnow", "SNOWFLAKE_USER": "fake",
                            "SNOWFLAKE_DATABASE": "SALESPIPE", "SNOWFLAKE_SCHEMA": "SECRETS",
                            "SNOWFLAKE_HOST": "127.0.0.1", "SNOWFLAKE_PORT": str(snow_port),
                            "SNOWFLAKE_PROTOCOL": "http", "SUPERSET_URL": superset_url,
                            "SUPERSET_ADMIN_USER": "admin",
                            **{v: CANARY for v in PASSWORD_VARIABLES}}.items():
            monkeypatch.setenv(name, value)
        for name in KEY_VARIABLES + ["SNOWFLAKE_PRIVATE_KEY_PATH"]:
            monkeypatch.delenv(name, raising=False)

        with dg.DagsterInstance.local_temp(str(home)) as instance:
            # Round 1: password authentication; a Monday, then its week, all succeed.
            generate(lake, dt.date(2024, 1, 8), 1, scale=SCALE, seed=11, progress=False)
            defs = build_definitions(settings)
            first = run_lake(defs, instance, defs.resources["lake"], progress=False)
            assert first.ok, first.all_errors()
            assert [o.partition for o in first.weeks] == ["2024-01-07"]
            summaries["round 1"] = first
            assert superset_logins and set(superset_logins) == {CANARY}  # the password was sent...
            dashboard = first.weeks[0].metadata["dashboard/weekly_sales_inventory"]
            assert dashboard["status"] == "error" and "401" in dashboard["reason"]  # ...and refused
            with SnowflakeResource(account="fakesnow", user="fake", password="other", database="SALESPIPE",
                                   schema="SECRETS", additional_snowflake_connection_args={
                                       "host": "127.0.0.1", "port": snow_port, "protocol": "http"},
                                   ).get_connection() as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM weekly_sales_inventory")
                assert cur.fetchone()[0] > 0  # loaded over the connection the canary password opened

            # Round 2: a file with a wrong header fails its day; a "private key" that is not one
            # fails the week's warehouse load.
            for name in KEY_VARIABLES:
                monkeypatch.setenv(name, CANARY)
            generate(lake, dt.date(2024, 1, 9), 1, scale=SCALE, seed=11, progress=False)
            inventory = lake / "raw" / "inventory_2024-01-09.csv.gz"
            inventory.write_bytes(gzip.compress(b"cal_dt,store\n2024-01-09,1\n", mtime=0))
            defs = build_definitions(settings)  # the resources read the variables when built
            second = run_lake(defs, instance, defs.resources["lake"], progress=False)
            summaries["round 2"] = second
            [day] = second.days
            assert not day.ok and any("wrong header" in e for e in day.errors)
            [week] = second.weeks
            assert not week.ok and "Unable to load private key" in failures(instance, week.run_id)

            assert len(instance.get_runs()) == 4
            out, err = capfd.readouterr()
            texts = {"captured stdout": out, "captured stderr": err}
            for label, summary in summaries.items():
                texts[f"{label} errors"] = "\n".join(summary.all_errors())
                texts[f"{label} metadata"] = repr([o.metadata for o in summary.days + summary.weeks])
            leaks = canary_sightings(CANARY, instance, [home, lake], texts)
    assert not leaks, "the canary secret was found in:\n" + "\n".join(leaks)


# -- the scan can fail ----------------------------------------------------------------------------

def test_the_scan_finds_a_planted_canary(tmp_path):
    """Planted in a log message, in asset metadata, in a failure and in a file, the canary is found."""
    planted = f"canary-{secrets.token_hex(12)}"

    @dg.asset
    def logs_it(context: dg.AssetExecutionContext):
        context.log.info(f"connecting with {planted}")
        return dg.MaterializeResult(metadata={"note": "nothing secret"})

    @dg.asset
    def puts_it_in_metadata():
        return dg.MaterializeResult(metadata={"dsn": f"snowflake://user:{planted}@account"})

    @dg.asset
    def fails_with_it():
        raise RuntimeError(f"login refused for password {planted}")

    home = tmp_path / "home"
    home.mkdir()
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        runs = {}
        for asset in (logs_it, puts_it_in_metadata, fails_with_it):
            runs[asset.key.to_user_string()] = dg.materialize([asset], instance=instance, raise_on_error=False).run_id
        (tmp_path / "lake").mkdir()
        (tmp_path / "lake" / "_manifest.json").write_text(json.dumps({"token": planted}))
        found = canary_sightings(planted, instance, [tmp_path / "lake"], {"stderr": f"x {planted} y", "stdout": ""})
        assert canary_sightings("canary-never-planted", instance, [home, tmp_path / "lake"], {}) == []
    for name, run_id in runs.items():
        assert any(run_id in f for f in found), (name, found)
    assert str(tmp_path / "lake" / "_manifest.json") in found
    assert "stderr" in found and "stdout" not in found
