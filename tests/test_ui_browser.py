"""The Dagster UI of ``salespipe dev`` used the way a person uses it, in a real browser:
Debian's headless Chromium driven by Playwright (no browser is downloaded), against the
session's dev server on 127.0.0.1 (tests/dev_server.py: webserver, daemon, sensors on, a
real Spark local-mode pipeline, DuckDB catalog and warehouse).

Before the browser opens, the landing sensor has built both weeks from two landed days
(one of them with three bad sales rows). Then, through the UI only: the lineage from raw
files to the warehouse (and the dashboard, once it is in the graph) grouped by domain; the
sensors listed and running; one daily partition materialized; a two-week backfill of the
weekly job; the asset check results; the fact's metadata (row count, accepted/rejected
rows, preview table, weekly-totals chart). Runs launched from the UI are followed through
the webserver's GraphQL API. Screenshots go to docs/img/ for docs/tour.md.

Skipped, with the reason, when Chromium or Playwright is missing.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import shutil
import tempfile

import pytest

from salespipe_assets.partitions import week_of
from salespipe_assets.settings import PROJECT_ROOT
from tests.dev_server import BAD_SALES_ROWS, E2E_DAY, UI_DAY, WEEKS

CHROMIUM = os.environ.get("SALESPIPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = PROJECT_ROOT / "docs" / "img"
UI_TIMEOUT_MS = 180_000  # the shared machine can take minutes to answer a heavy page


def _why_no_browser() -> str | None:
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SALESPIPE_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[dev]')"
    return None


pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(_why_no_browser() is not None, reason=_why_no_browser() or "")]


# --- fixtures -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def two_weeks(dev_server):
    """Both weeks built by the sensors alone, nothing left in flight."""
    for day in (E2E_DAY, UI_DAY):
        dev_server.land(day)
    for week in WEEKS:
        dev_server.wait_until(lambda w=week: dev_server.week_built(w), what=f"the sensors building week {week}")
    dev_server.wait_idle()
    return dev_server


@pytest.fixture(scope="module")
def offsite() -> list[str]:
    """What the page tried to fetch from anywhere but the dev server (blocked)."""
    return []


@pytest.fixture(scope="module")
def page(dev_server, offsite):
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1600, "height": 1000}, device_scale_factor=1)

        def only_local(route):
            if route.request.url.startswith(dev_server.url) or route.request.url.startswith("data:"):
                route.continue_()
            else:  # nothing leaves the machine
                offsite.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.set_default_timeout(UI_TIMEOUT_MS)
        page.goto(dev_server.url + "/overview")
        if dev_server.graphql("{ shouldShowNux }")["shouldShowNux"]:
            page.get_by_role("button", name="Skip").click()  # the first-visit community dialog
        try:
            yield page
        finally:
            context.close()


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_timeout(1000)  # let the last layout and fade-in settle
    page.screenshot(path=str(SCREENSHOTS / name))
    assert (SCREENSHOTS / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def graph_boxes(page) -> tuple[dict[str, dict], list[tuple[str, dict]]]:
    """(group name -> box, [(asset label, box)]) of the asset graph as drawn on screen."""
    items = page.evaluate("""() => Array.from(document.querySelectorAll('foreignObject')).map(e => {
        const b = e.getBoundingClientRect();
        const kind = e.querySelector('[class*=assetName]') ? 'asset' : (e.querySelector('[class*=groupOutline]') ? 'outline' : 'group');
        return {kind, text: e.textContent.trim(), x: b.x, y: b.y, w: b.width, h: b.height};
    })""")
    groups = {i["text"]: i for i in items if i["kind"] == "group" and i["text"]}
    return groups, [(i["text"], i) for i in items if i["kind"] == "asset"]


def inside(inner: dict, outer: dict) -> bool:
    return (outer["x"] <= inner["x"] and inner["x"] + inner["w"] <= outer["x"] + outer["w"]
            and outer["y"] <= inner["y"] and inner["y"] + inner["h"] <= outer["y"] + outer["h"])


def _metadata_value(page, key: str) -> str:
    """The value cell of a metadata row on the current page."""
    row = page.locator("tr", has=page.locator("td", has_text=re.compile(rf"^{re.escape(key)}$"))).first
    return row.locator("td").nth(1).inner_text().strip()


def _landed_rows(dev_server, table: str, day: str) -> int:
    text = gzip.decompress((dev_server.lake / "raw" / f"{table}_{day}.csv.gz").read_bytes()).decode()
    return len(text.splitlines()) - 1  # less the header


# --- tests, in the order a person would go -----------------------------------------------
def test_lineage_from_raw_files_to_the_end_grouped_by_domain(dev_server, page):
    nodes = dev_server.graphql("{ assetNodes { assetKey { path } groupName } }")["assetNodes"]
    dashboards = [n for n in nodes if n["assetKey"]["path"][0] == "dashboard"]
    last = dashboards[0]["assetKey"]["path"] if dashboards else ["warehouse", "weekly_sales_inventory"]
    chain = ["landing", "staging", "sales_inventory", "catalog", "warehouse"]
    if dashboards:
        chain.append(dashboards[0]["groupName"])

    page.set_viewport_size({"width": 1600, "height": 1200})  # room for the whole upstream graph
    page.goto(f"{dev_server.url}/assets/{'/'.join(last)}?view=lineage&lineageScope=upstream&lineageDepth=10")
    page.get_by_text("raw_sales", exact=True).first.wait_for()
    page.wait_for_timeout(1500)
    groups, assets = graph_boxes(page)
    assert set(chain) <= set(groups), f"groups drawn: {sorted(groups)}"

    def group_of(label: str) -> str:
        owners = [g for g, box in groups.items() for text, a in assets if text == label and inside(a, box)]
        assert owners, f"{label} is not drawn inside a group"
        return owners[0]

    for table in ("sales", "inventory"):
        assert group_of(f"raw_{table}") == "landing"
        assert group_of(f"staged_{table}") == "staging"
    # The fact, its catalog table and its warehouse table (and the dashboard) share one name,
    # shortened on screen; each is drawn in its own domain's group.
    fact_like = sorted(g for g, box in groups.items()
                       for text, a in assets if text.startswith("weekly_") and inside(a, box))
    assert fact_like == sorted(chain[2:]), fact_like
    # Only the upstream of the last asset is drawn, left to right in lineage order.
    xs = [groups[g]["x"] for g in chain]
    assert xs == sorted(xs), dict(zip(chain, xs))
    shot(page, "lineage.png")
    page.set_viewport_size({"width": 1600, "height": 1000})


def test_the_sensors_are_listed_and_running(dev_server, page, two_weeks):
    from playwright.sync_api import expect

    page.goto(f"{dev_server.url}/automation")
    for name in ("landing_sensor", "week_after_day", "week_after_failed_day"):
        row = page.locator("[class*=VirtualizedTable_row]", has=page.get_by_text(name, exact=True))
        expect(row.locator("[class*=formatSwitch] input[type=checkbox]")).to_be_checked(timeout=UI_TIMEOUT_MS)
    page.goto(f"{dev_server.url}/locations/salespipe/sensors/landing_sensor")
    running = page.locator("tr", has=page.get_by_text("Running", exact=True))
    expect(running.locator("[class*=formatSwitch] input[type=checkbox]")).to_be_checked(timeout=UI_TIMEOUT_MS)
    # Its runs tab lists the daily runs it requested for the two landed days.
    requested = [r for r in dev_server.runs()
                 if r["tags"].get("dagster/sensor_name") == "landing_sensor" and r["jobName"] == "daily_job"]
    assert sorted(r["tags"]["dagster/partition"] for r in requested) == sorted([E2E_DAY, UI_DAY])
    page.get_by_role("button", name="Runs", exact=True).click()
    for run in requested:
        page.get_by_text(run["runId"][:8], exact=True).first.wait_for()
    shot(page, "sensor.png")


def test_materialize_one_daily_partition(dev_server, page, two_weeks):
    page.goto(f"{dev_server.url}/assets/staged_sales")
    page.get_by_role("button", name="Materialize").first.click()
    dialog = page.get_by_role("dialog")
    keys = dialog.get_by_placeholder("ex: ", exact=False)
    keys.fill(UI_DAY)
    keys.press("Enter")
    dialog.get_by_role("button", name="Launch 1 run").click()
    toast = page.get_by_text(re.compile(r"Launched run [0-9a-f]{8}")).first
    short_id = re.search(r"[0-9a-f]{8}", toast.inner_text()).group(0)

    run = dev_server.wait_for_run(lambda r: r["runId"].startswith(short_id), what=f"run {short_id} from the UI")
    assert run["status"] == "SUCCESS", dev_server.log_tail()
    assert run["tags"].get("dagster/partition") == UI_DAY and run["tags"].get("dagster/from_ui") == "true"

    page.goto(f"{dev_server.url}/assets/staged_sales?view=partitions&partition={UI_DAY}")
    page.get_by_text(short_id).first.wait_for()  # the partition shows the UI's run
    bad = {reason: len(rows) for reason, rows in BAD_SALES_ROWS.items()}
    assert int(_metadata_value(page, "rows_rejected")) == sum(bad.values())
    for reason, n in bad.items():
        assert int(_metadata_value(page, f"rejected_{reason}")) == n
    assert json.loads(_metadata_value(page, "rejects_by_reason")) == bad
    assert int(_metadata_value(page, "rows_accepted")) == _landed_rows(dev_server, "sales", UI_DAY) - sum(bad.values())
    shot(page, "partition.png")


def test_backfill_two_weeks_is_one_run(dev_server, page, two_weeks):
    query = "{ partitionBackfillsOrError { ... on PartitionBackfills { results { id status partitionNames } } } }"
    before = {b["id"] for b in dev_server.graphql(query)["partitionBackfillsOrError"]["results"]}
    page.goto(f"{dev_server.url}/locations/salespipe/jobs/weekly_job")
    page.get_by_role("button", name="Materialize all").click()  # the weekly job's three assets
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="All", exact=True).click()
    dialog.get_by_text(f"{len(WEEKS)} partitions").wait_for()
    dialog.get_by_role("button", name="Launch backfill").click()
    toast = page.get_by_text(re.compile(r"Created backfill \w+")).first
    backfill_id = toast.inner_text().split()[-1]

    def backfill():
        found = [b for b in dev_server.graphql(query)["partitionBackfillsOrError"]["results"] if b["id"] == backfill_id]
        return found[0] if found else None

    assert backfill_id not in before and sorted(backfill()["partitionNames"]) == WEEKS
    done = dev_server.wait_until(
        lambda: (b := backfill()) and b["status"] not in ("REQUESTED", "CANCELING", "FAILING") and b,
        what=f"backfill {backfill_id}")
    assert done["status"] in ("COMPLETED", "COMPLETED_SUCCESS"), done
    # "Materialize all" over a range is one run (single-run backfill policy): the range in its tags
    [run] = [r for r in dev_server.runs() if r["tags"].get("dagster/backfill") == backfill_id]
    assert run["status"] == "SUCCESS", run
    assert (run["tags"].get("dagster/asset_partition_range_start"),
            run["tags"].get("dagster/asset_partition_range_end")) == (min(WEEKS), max(WEEKS))
    assert "dagster/partition" not in run["tags"]

    page.goto(f"{dev_server.url}/runs/b/{backfill_id}")
    page.get_by_text(f"{len(WEEKS)} partitions").first.wait_for()
    page.get_by_text("Succeeded", exact=True).first.wait_for()
    shot(page, "backfill.png")


def test_asset_check_results_are_shown(dev_server, page, two_weeks):
    # check -> a metadata key only its own result carries, so the panel shown is that check's
    for asset, checks in (("weekly_sales_inventory", {"unique_keys": "distinct_keys",
                                                      "non_negative_measures": "rows_with_negative_measure"}),
                          ("warehouse/weekly_sales_inventory", {"rows_match_curated": "warehouse_rows"}),
                          ("staged_sales", {"rows_reconcile": "rows_read"})):
        page.goto(f"{dev_server.url}/assets/{asset}?view=checks")
        for check, key in checks.items():
            listed = page.locator("[class*=VirtualizedTable_row]", has_text=check).first
            listed.get_by_text("Succeeded").wait_for()
            listed.click()
            page.get_by_text(key, exact=True).first.wait_for()
            page.get_by_text("Passed", exact=True).first.wait_for()
        if asset == "weekly_sales_inventory":
            shot(page, "checks.png")


def test_the_fact_shows_its_metadata(dev_server, page, two_weeks):
    week = week_of(UI_DAY)
    manifest = json.loads((dev_server.lake / f"curated/weekly_sales_inventory/week_start={week}/_manifest.json")
                          .read_text())
    page.goto(f"{dev_server.url}/assets/weekly_sales_inventory?view=partitions&partition={week}")
    page.get_by_text("weekly_totals_chart", exact=True).first.wait_for()
    bad = sum(len(rows) for rows in BAD_SALES_ROWS.values())
    assert int(_metadata_value(page, "dagster/row_count")) == manifest["row_count"]
    assert int(_metadata_value(page, "sales_rows_rejected")) == bad
    assert int(_metadata_value(page, "sales_rows_accepted")) == _landed_rows(dev_server, "sales", UI_DAY) - bad
    assert int(_metadata_value(page, "inventory_rows_accepted")) == _landed_rows(dev_server, "inventory", UI_DAY)
    assert _metadata_value(page, "path").endswith(f"week_start={week}")
    shot(page, "fact_metadata.png")

    # The preview: a table of the week's top rows.
    page.locator("tr", has=page.get_by_text("preview", exact=True)).get_by_text("[Show Markdown]").click()
    preview = page.get_by_role("dialog")
    preview.locator("table th").first.wait_for()
    header = preview.locator("table th").all_inner_texts()
    assert {"store_key", "prod_key", "total_sales_amt"} <= set(header), header
    assert preview.locator("table tbody tr").count() == min(10, manifest["row_count"])
    preview.get_by_role("button", name="Close").click()

    # The chart: an image the browser decoded and drew, with a bar for each built week.
    page.locator("tr", has=page.get_by_text("weekly_totals_chart", exact=True)).get_by_text("[Show Markdown]").click()
    chart = page.get_by_role("dialog").locator("img").first
    chart.wait_for()
    assert chart.evaluate("img => img.complete && img.naturalWidth") > 300
    svg = chart.get_attribute("src")
    assert svg.startswith("data:image/svg+xml;base64,")
    drawn = base64.b64decode(svg.split(",", 1)[1]).decode()
    assert all(f">{w[5:]}</text>" in drawn for w in WEEKS), "a bar label per week"
    shot(page, "fact_chart.png")
    page.get_by_role("dialog").get_by_role("button", name="Close").click()


def test_the_ui_fetched_nothing_from_outside(page, offsite):
    assert offsite == []
