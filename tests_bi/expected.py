"""What each chart of the dashboard must show, restated as DuckDB SQL on the warehouse tables.

Written from the chart's meaning (SPEC §3 and docs/bi.md), not from Superset's SQL: the
fact is read directly, so a fan-out in the dataset's joins or a wrong metric shows up.
Each query returns (label, value) pairs; labels are strings.
"""

from __future__ import annotations

EXPECTED_SQL = {
    "Weekly sales trend": """
        SELECT strftime(week_start, '%Y-%m-%d'), SUM(total_sales_amt)::DOUBLE
        FROM weekly_sales_inventory GROUP BY 1""",
    "In-stock % by region": """
        SELECT s.region, AVG(f.in_stock_pct)
        FROM weekly_sales_inventory f LEFT JOIN store s USING (store_key) GROUP BY 1""",
    # All products with their impact; the chart keeps the ten largest.
    "Top products by no-stock impact": """
        SELECT p.prod_name, SUM(f.no_stock_impact)::DOUBLE
        FROM weekly_sales_inventory f LEFT JOIN product p USING (prod_key) GROUP BY 1""",
    "Weeks of supply by category": """
        SELECT p.category_name,
               SUM(f.eow_stock_on_hand_qty)::DOUBLE
               / SUM(f.total_sales_qty) FILTER (WHERE f.eow_stock_on_hand_qty IS NOT NULL)
        FROM weekly_sales_inventory f LEFT JOIN product p USING (prod_key) GROUP BY 1""",
    "Low-stock instances by store and week": """
        SELECT strftime(f.week_start, '%Y-%m-%d') || ' / ' || s.store_desc, SUM(f.low_stock_instances)::DOUBLE
        FROM weekly_sales_inventory f LEFT JOIN store s USING (store_key) GROUP BY 1""",
}

def _day(epoch_ms: float) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(epoch_ms / 1000, tz=dt.timezone.utc).date().isoformat()


def chart_pairs(name: str, rows: list[dict]) -> list[tuple[str, float | None]]:
    """One row of the chart's data (from Superset's chart data API) as (label, value)."""
    if name == "Weekly sales trend":
        return [(_day(r["week_start"]), r["sales_amount"]) for r in rows]
    if name == "In-stock % by region":
        return [(r["region"], r["in_stock_pct"]) for r in rows]
    if name == "Top products by no-stock impact":
        return [(r["prod_name"], r["no_stock_impact"]) for r in rows]
    if name == "Weeks of supply by category":
        return [(r["category_name"], r["weeks_of_supply"]) for r in rows]
    if name == "Low-stock instances by store and week":
        return [(f"{_day(r['week_start'])} / {r['store_desc']}", r["low_stock_instances"]) for r in rows]
    raise KeyError(name)


TOP_N = {"Top products by no-stock impact": 10}
