"""Superset as `make bi` sets it up, through its REST API: it starts, the dashboard lists
every chart kept in bi/dashboards/, and each chart's data equals the warehouse's numbers.

Real components: Superset 6 (gunicorn, SQLite metadata) from .venv-bi, the warehouse a
DuckDB file opened read-only through duckdb-engine. Nothing is faked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from salespipe_assets import bi
from tests_bi import tiny_warehouse
from tests_bi.expected import EXPECTED_SQL, TOP_N, chart_pairs

ASSETS = Path(bi.BI_DIR) / "dashboards"
CHART_NAMES = sorted(yaml.safe_load(p.read_text())["slice_name"] for p in (ASSETS / "charts").glob("*.yaml"))
REQUIRED = {"Weekly sales trend", "Top products by no-stock impact", "Low-stock instances by store and week",
            "Weeks of supply by category", "In-stock % by region"}


def _charts(api) -> dict[str, int]:
    return {c["slice_name"]: c["id"] for c in api.get(f"/api/v1/dashboard/{bi.DASHBOARD_SLUG}/charts")["result"]}


def test_superset_starts_on_loopback_and_is_healthy(superset):
    pid = bi.running_pid(superset)
    assert pid is not None and bi.healthy(superset)
    assert superset.url.startswith("http://127.0.0.1:")
    listeners = [line.split()[1] for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]
                 if line.split()[1].endswith(f":{superset.port:04X}") and line.split()[3] == "0A"]
    assert listeners == [f"0100007F:{superset.port:04X}"]  # listening on 127.0.0.1 only


def test_the_dashboard_lists_every_chart_kept_in_the_repo(api):
    assert REQUIRED <= set(CHART_NAMES)
    assert sorted(_charts(api)) == CHART_NAMES
    dashboard = api.get(f"/api/v1/dashboard/{bi.DASHBOARD_SLUG}")["result"]
    assert dashboard["dashboard_title"] == "Weekly sales & inventory"
    assert dashboard["published"] is True


def test_the_dashboard_has_week_region_and_category_filters(api):
    import json

    meta = json.loads(api.get(f"/api/v1/dashboard/{bi.DASHBOARD_SLUG}")["result"]["json_metadata"])
    filters = {f["name"]: f for f in meta["native_filter_configuration"]}
    assert filters["Week range"]["filterType"] == "filter_time"
    assert filters["Region"]["targets"][0]["column"]["name"] == "region"
    assert filters["Category"]["targets"][0]["column"]["name"] == "category_name"


@pytest.mark.parametrize("name", sorted(EXPECTED_SQL))
def test_each_chart_returns_the_numbers_the_warehouse_holds(api, warehouse_sql, name):
    result = api.get(f"/api/v1/chart/{_charts(api)[name]}/data/")["result"][0]
    assert result["error"] is None
    shown = chart_pairs(name, result["data"])
    expected = {label: value for label, value in warehouse_sql(EXPECTED_SQL[name])}
    assert shown, "the chart has no data"
    if name in TOP_N:
        values = sorted((v for v in expected.values() if v is not None), reverse=True)[:TOP_N[name]]
        assert sorted((v for _, v in shown), reverse=True) == pytest.approx(values)
        assert len(shown) == min(TOP_N[name], len(expected))
    else:
        assert {label for label, _ in shown} == set(expected)
    for label, value in shown:
        assert value == pytest.approx(expected[label], rel=1e-9), label


def test_weekly_sales_match_hand_computed_totals(api, is_tiny_warehouse):
    if not is_tiny_warehouse:
        pytest.skip("hand-computed totals exist for the tiny test warehouse only")
    result = api.get(f"/api/v1/chart/{_charts(api)['Weekly sales trend']}/data/")["result"][0]
    assert dict(chart_pairs("Weekly sales trend", result["data"])) == tiny_warehouse.expected_weekly_sales()


def _weekly_sales(api, filters: list[dict]) -> list[float]:
    datasets = api.get(f"/api/v1/dashboard/{bi.DASHBOARD_SLUG}/datasets")["result"]
    body = {"datasource": {"id": datasets[0]["id"], "type": "table"}, "result_format": "json", "result_type": "full",
            "queries": [{"columns": ["week_start"], "metrics": ["sales_amount"], "orderby": [["week_start", True]],
                         "filters": filters, "row_limit": 1000}]}
    return [r["sales_amount"] for r in api.post("/api/v1/chart/data", body)["result"][0]["data"]]


def test_region_filter_narrows_every_number_to_that_region(api, warehouse_sql):
    """What the Region filter sends (an IN filter on region) gives that region's numbers."""
    region = warehouse_sql("SELECT min(region) FROM store")[0][0]
    shown = _weekly_sales(api, [{"col": "region", "op": "IN", "val": [region]}])
    expected = warehouse_sql(f"""
        SELECT SUM(total_sales_amt)::DOUBLE FROM weekly_sales_inventory f JOIN store s USING (store_key)
        WHERE s.region = '{region}' GROUP BY week_start ORDER BY week_start""")
    assert shown == pytest.approx([v for (v,) in expected])


def test_week_range_filter_keeps_the_weeks_starting_in_the_range(api, warehouse_sql):
    """What the Week range filter sends (a time range on week_start): start included, end excluded."""
    weeks = [w.isoformat() for (w,) in
             warehouse_sql("SELECT DISTINCT week_start FROM weekly_sales_inventory ORDER BY 1")]
    assert len(weeks) >= 3
    shown = _weekly_sales(api, [{"col": "week_start", "op": "TEMPORAL_RANGE", "val": f"{weeks[1]} : {weeks[-1]}"}])
    expected = warehouse_sql(f"""
        SELECT SUM(total_sales_amt)::DOUBLE FROM weekly_sales_inventory
        WHERE week_start >= DATE '{weeks[1]}' AND week_start < DATE '{weeks[-1]}' GROUP BY week_start ORDER BY 1""")
    assert len(shown) == len(weeks) - 2
    assert sorted(shown) == pytest.approx([v for (v,) in expected])


def _state(api) -> dict:
    def listed(kind: str, name: str) -> list:
        return sorted((o["id"], o[name]) for o in api.get(f"/api/v1/{kind}/?q=(page_size:100)")["result"])

    return {"charts": listed("chart", "slice_name"), "datasets": listed("dataset", "table_name"),
            "databases": listed("database", "database_name"), "dashboards": listed("dashboard", "slug"),
            "dashboard_charts": sorted(_charts(api).items())}


def test_bootstrap_twice_gives_the_same_state(api, superset, warehouse):
    before = _state(api)
    bi.bootstrap(superset, str(warehouse))
    assert _state(api) == before
    assert len(before["charts"]) == len(CHART_NAMES) and len(before["dashboards"]) == 1
