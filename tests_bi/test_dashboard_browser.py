"""The dashboard in a real headless Chromium (Debian's, driven by Playwright): every chart
is drawn, checked by the pixels of its canvas, the page fetches nothing from outside
127.0.0.1, and the queries the page sends are the ones saved with the charts. The
screenshot is written to docs/img/dashboard.png.

Skipped, with the reason, when Chromium or Playwright is missing.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from salespipe_assets import bi
from tests_bi.browser import capture_dashboard, chromium_missing
from tests_bi.conftest import ADMIN_PASSWORD, ADMIN_USER
from tests_bi.expected import EXPECTED_SQL, chart_pairs

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=chromium_missing() or "")
SCREENSHOT = Path(bi.PROJECT_ROOT) / "docs" / "img" / "dashboard.png"


def colour_stats(png: bytes) -> tuple[int, int, int]:
    """(pixels, saturated pixels, distinct saturated colours) of a PNG."""
    from PIL import Image

    img = Image.open(io.BytesIO(png)).convert("RGB")
    pixels = list(img.getdata())
    saturated = [p for p in pixels if max(p) - min(p) > 60]  # chart colours, not grey text or gridlines
    return len(pixels), len(saturated), len({(r >> 4, g >> 4, b >> 4) for r, g, b in saturated})


@pytest.fixture(scope="module")
def capture(superset):
    shot = capture_dashboard(superset.url, ADMIN_USER, ADMIN_PASSWORD, bi.DASHBOARD_SLUG,
                             expected_charts=len(EXPECTED_SQL))
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    SCREENSHOT.write_bytes(shot.screenshot)
    return shot


def test_every_chart_is_drawn(capture):
    assert capture.errors_shown == []
    assert capture.not_drawn == {}
    assert sorted(capture.chart_shots) == sorted(EXPECTED_SQL)
    for name, png in capture.chart_shots.items():
        total, saturated, colours = colour_stats(png)
        assert total > 100_000, f"{name}: canvas only {total} pixels"
        # A drawn line, bar set or heatmap has hundreds of coloured pixels; an empty or
        # failed chart has none (axes, labels and gridlines are grey).
        assert saturated > 500, f"{name}: {saturated} coloured pixels"
        if name == "Low-stock instances by store and week":
            assert colours >= 2, f"{name}: a heatmap needs a colour scale, saw {colours} colours"


def test_the_whole_screenshot_is_a_rendered_dashboard(capture):
    total, saturated, colours = colour_stats(capture.screenshot)
    assert total >= 1600 * 1000
    assert saturated / total > 0.02 and colours >= 3
    assert SCREENSHOT.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_page_fetches_nothing_from_outside(capture):
    assert capture.offsite_requests == []


def test_the_numbers_drawn_are_the_warehouse_numbers(capture, warehouse_sql):
    for slice_id, response in capture.chart_responses.items():
        name = capture.chart_names[slice_id]
        expected = dict(warehouse_sql(EXPECTED_SQL[name]))
        for label, value in chart_pairs(name, response["result"][0]["data"]):
            assert value == pytest.approx(expected[label], rel=1e-9), (name, label)


def test_saved_query_contexts_match_what_the_dashboard_sends(capture, api):
    """GET /api/v1/chart/<id>/data runs the saved query context; it must be the query the
    page runs (tests_bi/update_query_contexts.py re-records them after a params change)."""
    import json

    for slice_id, request in capture.chart_requests.items():
        saved = json.loads(api.get(f"/api/v1/chart/{slice_id}")["result"]["query_context"])
        assert saved["queries"] == request["queries"], capture.chart_names[slice_id]
