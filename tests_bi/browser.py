"""Open the dashboard in the system's headless Chromium (Playwright drives it; it never
downloads a browser) and record what the page asked Superset for and what it drew."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM = os.environ.get("SALESPIPE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) and not shutil.which(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SALESPIPE_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -r bi/requirements-test-bi.txt)"
    return None


@dataclass
class DashboardCapture:
    screenshot: bytes = b""
    chart_shots: dict[str, bytes] = field(default_factory=dict)   # chart name -> PNG of its canvas
    not_drawn: dict[str, str] = field(default_factory=dict)       # chart name -> what it shows instead
    chart_requests: dict[int, dict] = field(default_factory=dict)  # slice id -> /api/v1/chart/data body
    chart_responses: dict[int, dict] = field(default_factory=dict)
    chart_names: dict[int, str] = field(default_factory=dict)
    offsite_requests: list[str] = field(default_factory=list)
    errors_shown: list[str] = field(default_factory=list)


def capture_dashboard(base_url: str, username: str, password: str, slug: str, expected_charts: int,
                      timeout_ms: int = 120_000) -> DashboardCapture:
    from playwright.sync_api import sync_playwright

    out = DashboardCapture()
    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1600, "height": 1750}, device_scale_factor=1)
        try:
            def only_local(route):
                if route.request.url.startswith(base_url):
                    route.continue_()
                else:  # nothing may be fetched from outside; record what tried
                    out.offsite_requests.append(route.request.url)
                    route.abort()

            def on_response(response):
                if "/api/v1/chart/data" in response.url and response.request.method == "POST":
                    body = response.request.post_data_json or {}
                    slice_id = (body.get("form_data") or {}).get("slice_id")
                    if slice_id is not None:
                        out.chart_requests[slice_id] = body
                        try:
                            out.chart_responses[slice_id] = response.json() if response.ok else \
                                {"status": response.status}
                        except Exception as exc:  # an event handler must not raise into Playwright
                            out.chart_responses[slice_id] = {"unreadable": repr(exc)}

            context.route("**/*", only_local)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            page.on("response", on_response)
            try:
                _load(page, base_url, username, password, slug, expected_charts, out)
            except Exception as exc:
                failed = Path(tempfile.gettempdir()) / "salespipe-dashboard-failure.png"
                page.screenshot(path=str(failed))
                raise RuntimeError(f"dashboard did not load ({exc.__class__.__name__}: {str(exc)[:300]}); "
                                   f"page {page.url}, screenshot {failed}") from exc
        finally:
            context.close()
    return out


def _load(page, base_url, username, password, slug, expected_charts, out: DashboardCapture) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("input#username", username)
    page.fill("input#password", password)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/login" not in url)
    page.goto(f"{base_url}/superset/dashboard/{slug}/")
    charts = page.locator("[data-test=chart-grid-component]")
    # Settled: every chart drew its canvas or finished loading without one (empty, error).
    page.wait_for_function(
        """n => { const charts = [...document.querySelectorAll('[data-test=chart-grid-component]')];
                 return charts.length >= n && charts.every(c => c.querySelector('canvas') ||
                     (c.querySelector('[data-test=slice-container]') &&
                      !c.querySelector('[data-test=loading-indicator]'))); }""",
        arg=expected_charts)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(1500)  # ECharts animates bars and lines in
    for i in range(charts.count()):
        chart = charts.nth(i)
        name = chart.get_attribute("data-test-chart-name")
        out.chart_names[int(chart.get_attribute("data-test-chart-id"))] = name
        if chart.locator("canvas").count():
            out.chart_shots[name] = chart.locator("canvas").first.screenshot()
        else:
            out.not_drawn[name] = chart.inner_text()[:300]
    out.errors_shown = page.locator("[data-test=chart-grid-component] [role=alert]").all_inner_texts()
    # The viewport holds the whole dashboard: a full-page capture would repeat its sticky header.
    out.screenshot = page.screenshot()
