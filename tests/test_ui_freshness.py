"""Pages of the Dagster UI for issue 16, each on a webserver of its own (no dev server):
landed files that are overdue, the aws environment's lineage with the Snowflake source
export upstream of the raw files, and a week stopped by a blocking check (run first on the
test session's Spark). Debian's headless Chromium through Playwright, as in
tests/test_ui_browser.py; screenshots to docs/img/ for docs/tour.md.

Overdue: a day's files are registered two days ago (time frozen in this process), then
Dagster's freshness daemon evaluates the code location as it is served (SALESPIPE_LANDING_DUE
06:00 UTC) and records the raw assets as failing; the webserver shows what it recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.test_utils import create_test_daemon_workspace_context, freeze_time
from dagster._core.workspace.load_target import ModuleTarget
from dagster._daemon.freshness import FreshnessDaemon

from salespipe_assets.assets.landing import raw_key, raw_landing
from salespipe_assets.resources import LocalLake
from salespipe_assets.settings import PROJECT_ROOT
from spark_steps.contract import TABLES
from tests.conftest import write_landing
from tests.dev_server import SERVER_START_TIMEOUT, DevServer, _wait_loaded
from tests.servers import free_port, start, stop, wait_http
from tests.test_ui_browser import CHROMIUM, CHROMIUM_ARGS, UI_TIMEOUT_MS, _why_no_browser, shot

DAY = "2024-01-08"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")]

_FRESHNESS = """
query Fresh($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
  freshnessStatusInfo { freshnessStatus } } } }"""


def _env(root: Path, **extra) -> dict[str, str]:
    return {"DAGSTER_HOME": str(root / "home"), "SALESPIPE_LAKE": str(root / "lake"),
            "SALESPIPE_WAREHOUSE": str(root / "warehouse.duckdb"), "SALESPIPE_CATALOG": str(root / "catalog.duckdb"),
            "SALESPIPE_PARTITION_START": "2024-01-07", "SALESPIPE_PARTITION_END": "2024-01-21",
            "SALESPIPE_LANDING_DUE": "06:00", "SUPERSET_URL": "", **extra}


@contextmanager
def _webserver(root: Path, env: dict[str, str]):
    home = Path(env["DAGSTER_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = free_port()
    server = DevServer(url=f"http://127.0.0.1:{port}", lake=root / "lake", warehouse=root / "warehouse.duckdb",
                       home=home, upstream=root, log=root / "webserver.log")
    server.proc = start([str(Path(sys.executable).parent / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port),
                         "-w", str(PROJECT_ROOT / "workspace.yaml")], env=env, log=server.log, cwd=str(PROJECT_ROOT))
    try:
        wait_http(f"{server.url}/server_info", timeout=SERVER_START_TIMEOUT, proc=server.proc)
        _wait_loaded(server, SERVER_START_TIMEOUT)
        yield server
    finally:
        stop(server.proc)


@contextmanager
def _page(server: DevServer):
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    offsite: list[str] = []
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1600, "height": 1000}, device_scale_factor=1)

        def only_local(route):
            if route.request.url.startswith(server.url) or route.request.url.startswith("data:"):
                route.continue_()
            else:
                offsite.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(server.url + "/overview")
        if server.graphql("{ shouldShowNux }")["shouldShowNux"]:
            page.get_by_role("button", name="Skip").click()
        try:
            yield page
        finally:
            context.close()
    assert offsite == []


def test_overdue_landing_files_show_in_the_ui(tmp_path, monkeypatch):
    env = _env(tmp_path, SALESPIPE_ENV="local")
    for var, value in env.items():
        monkeypatch.setenv(var, value)  # the code server the daemon starts reads them
    for table in TABLES:
        write_landing(tmp_path / "lake", table, DAY, [])
    (tmp_path / "home").mkdir()
    two_days_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=2)
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        with freeze_time(two_days_ago):
            assert dg.materialize([raw_landing], partition_key=DAY, instance=instance,
                                  resources={"lake": LocalLake(root=str(tmp_path / "lake"))}).success
        target = ModuleTarget(module_name="salespipe_assets.definitions", attribute="defs",
                              working_directory=str(PROJECT_ROOT), location_name="salespipe")
        with create_test_daemon_workspace_context(target, instance) as workspace:
            list(FreshnessDaemon().run_iteration(workspace))

    with _webserver(tmp_path, env) as server:
        status = server.graphql(_FRESHNESS, {"key": {"path": ["raw_sales"]}})
        assert status["assetNodeOrError"]["freshnessStatusInfo"]["freshnessStatus"] == "DEGRADED"
        with _page(server) as page:
            page.goto(f"{server.url}/assets/raw_sales")
            page.get_by_text("Freshness", exact=False).first.wait_for()
            page.get_by_text(raw_key("sales").path[0], exact=True).first.wait_for()
            shot(page, "freshness_overdue.png")


def test_aws_lineage_shows_the_source_export_upstream_of_the_raw_files(tmp_path):
    env = _env(tmp_path, SALESPIPE_ENV="aws", SALESPIPE_LAKE="s3://salespipe-demo/lake",
               SALESPIPE_EMR_ARTIFACTS_URI="s3://salespipe-demo/emr/artifacts",
               SALESPIPE_EMR_LOG_URI="s3://salespipe-demo/emr/logs", AWS_DEFAULT_REGION="us-east-1")
    with _webserver(tmp_path, env) as server, _page(server) as page:
        page.set_viewport_size({"width": 1400, "height": 1500})  # the export and its five files, whole
        page.goto(f"{server.url}/assets/raw_sales?view=lineage&lineageScope=upstream&lineageDepth=2")
        page.get_by_text("snowflake_source_export", exact=True).first.wait_for()
        page.goto(f"{server.url}/assets/snowflake_source_export?view=lineage&lineageScope=downstream&lineageDepth=1")
        for table in TABLES:
            page.get_by_text(f"raw_{table}", exact=True).first.wait_for()
        page.wait_for_timeout(1500)
        drawn = page.evaluate("""() => Array.from(document.querySelectorAll('foreignObject')).map(e => {
            const b = e.getBoundingClientRect(); return {text: e.textContent.trim(), y: b.y, h: b.height};})""")
        names = {d["text"].split("Latest")[0].strip(): d for d in drawn}
        for table in TABLES:  # every raw file's node is on screen
            node = next(d for n, d in names.items() if n.startswith(f"raw_{table}"))
            assert 0 <= node["y"] and node["y"] + node["h"] <= 1500, (table, node)
        shot(page, "lineage_aws.png")


def test_a_blocked_week_shows_its_failed_check_and_why_in_the_ui(spark, tmp_path, monkeypatch):
    """The week of tests/test_blocking_checks.py (a planted negative sale), run on an instance
    the webserver then serves: the fact's checks tab shows non_negative_measures failed, and
    the run shows the step failing on the blocking check, the warehouse step never started."""
    from salespipe_assets.assets.fact import FACT_KEY
    from salespipe_assets.definitions import build_definitions
    from tests.test_blocking_checks import WEEK, _plant_negative_sale, _settings, _staged_week

    env = _env(tmp_path, SALESPIPE_ENV="local")
    monkeypatch.setenv("SUPERSET_URL", "")
    _staged_week(spark, tmp_path / "lake")
    _plant_negative_sale(tmp_path / "lake")
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    job = build_definitions(_settings(tmp_path, tmp_path / "lake")).resolve_job_def("weekly_job")
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        result = job.execute_in_process(partition_key=WEEK, instance=instance, raise_on_error=False)
    assert not result.success

    with _webserver(tmp_path, env) as server, _page(server) as page:
        page.goto(f"{server.url}/runs/{result.run_id}")
        page.get_by_text("blocking asset check failed", exact=False).first.wait_for()
        page.get_by_text("non_negative_measures", exact=False).first.wait_for()
        page.get_by_text("Not executing", exact=False).first.wait_for()
        shot(page, "blocking_run.png")
        page.goto(f"{server.url}/assets/{FACT_KEY.path[0]}?view=checks")
        page.get_by_text("non_negative_measures", exact=True).first.wait_for()
        page.get_by_text("blocking asset check", exact=False).first.wait_for()
        page.get_by_text("rows_with_negative_measure", exact=True).first.wait_for()
        shot(page, "blocking_check.png")
