"""Rewrite each chart's ``query_context`` in bi/dashboards/charts/ from what the browser asks for.

Superset answers ``GET /api/v1/chart/<id>/data`` from the query context saved with the
chart, which the web UI normally writes when a chart is saved in Explore. Charts kept as
code need it written too: after changing a chart's ``params``, run

    make bi && .venv/bin/python -m tests_bi.update_query_contexts && make bi

and commit the result. tests_bi/test_dashboard_browser.py fails while a saved query
context differs from the query the dashboard really sends.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import yaml

from salespipe_assets.bi import DASHBOARD_SLUG, LOCAL_DEFAULT_PASSWORD, LOCAL_DEFAULT_USER, BIConfig
from tests_bi.browser import capture_dashboard

CHARTS_DIR = Path(__file__).resolve().parent.parent / "bi" / "dashboards" / "charts"


def chart_files() -> dict[str, Path]:
    return {yaml.safe_load(p.read_text())["slice_name"]: p for p in sorted(CHARTS_DIR.glob("*.yaml"))}


def write_query_context(path: Path, query_context: dict) -> None:
    text = path.read_text()
    block = yaml.safe_dump({"query_context": query_context}, sort_keys=False, width=110)
    # Replace the top-level query_context entry (up to the next top-level key), keeping comments elsewhere.
    new, n = re.subn(r"^query_context:.*?(?=^\S)", lambda _: block, text, count=1, flags=re.M | re.S)
    if n != 1:
        raise ValueError(f"{path}: no top-level query_context entry")
    path.write_text(new)


def main() -> int:
    cfg = BIConfig()
    user = os.environ.get("SUPERSET_ADMIN_USER") or LOCAL_DEFAULT_USER
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD") or LOCAL_DEFAULT_PASSWORD
    files = chart_files()
    capture = capture_dashboard(cfg.url, user, password, DASHBOARD_SLUG, expected_charts=len(files))
    for slice_id, body in capture.chart_requests.items():
        name = capture.chart_names[slice_id]
        # Only the queries: bi/bootstrap.py adds the chart's params and the dataset.
        write_query_context(files[name], {"queries": body["queries"]})
        print(f"{files[name].name}: query_context from the dashboard's request")
    missing = set(files) - {capture.chart_names[i] for i in capture.chart_requests}
    if missing:
        print(f"no request seen for: {', '.join(sorted(missing))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
