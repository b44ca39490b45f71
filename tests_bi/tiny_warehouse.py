"""A tiny warehouse DuckDB file with the pipeline's table layout and known numbers.

The tables have the columns and types the warehouse assets write (the fact's
FACT_SCHEMA, the dimensions' contract columns). Rows follow simple formulas, so the
tests can state some expected values by hand (``expected_weekly_sales``) besides
re-computing every chart with DuckDB SQL.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from spark_steps.contract import CONTRACT
from spark_steps.fact import FACT_SCHEMA

WEEKS = [dt.date(2024, 1, 7), dt.date(2024, 1, 14), dt.date(2024, 1, 21)]
STORES = {1: ("Store Alpha", "North"), 2: ("Store Bravo", "North"), 3: ("Store Charlie", "South")}
PRODUCTS = {10: ("Cola", "Beverages"), 11: ("Water", "Beverages"), 20: ("Chips", "Snacks"), 21: ("Nuts", "Snacks")}
NO_INVENTORY = (2, 21)  # (store, product) with sales but no inventory rows: null stock measures


def fact_row(week_index: int, store: int, prod: int) -> dict:
    qty = 10 * (week_index + 1) + store + prod % 10           # units sold in the week
    amt = qty * (2 + prod // 10)                               # price 3 for beverages, 4 for snacks
    no_stock = (store + prod + week_index) % 3                 # out-of-stock days, 0..2
    low_stock = (store * prod + week_index) % 2
    has_inventory = (store, prod) != NO_INVENTORY
    on_hand = 5 * store + prod % 10 + week_index if has_inventory else None
    return {
        "week_start": WEEKS[week_index], "week_end": WEEKS[week_index] + dt.timedelta(days=6),
        "store_key": store, "prod_key": prod,
        "total_sales_qty": qty, "total_sales_amt": amt, "total_sales_cost": amt * 0.6,
        "avg_sales_price": amt / qty,
        "eow_stock_on_hand_qty": on_hand, "eow_stock_on_order_qty": 4 if has_inventory else None,
        "no_stock_instances": no_stock if has_inventory else 0,
        "low_stock_instances": low_stock if has_inventory else 0,
        "total_low_stock_impact": (no_stock + low_stock) if has_inventory else 0,
        "in_stock_pct": (7 - no_stock) / 7 if has_inventory else None,
        "potential_low_stock_impact": float(low_stock * 3) if has_inventory else 0.0,
        "no_stock_impact": (amt * no_stock / 7) if has_inventory else 0,
        "weeks_of_supply": (on_hand / qty) if has_inventory else None,
    }


def fact_rows() -> list[dict]:
    return [fact_row(w, s, p) for w in range(len(WEEKS)) for s in STORES for p in PRODUCTS]


def expected_weekly_sales() -> dict[str, float]:
    """Σ total_sales_amt per week_start, from the formulas above (not from a query)."""
    out: dict[str, float] = {}
    for row in fact_rows():
        out[row["week_start"].isoformat()] = out.get(row["week_start"].isoformat(), 0) + row["total_sales_amt"]
    return out


def _sql_type(contract_type: str) -> str:
    return "VARCHAR" if contract_type == "string" else contract_type.upper()


def _dimension_rows(table: str) -> list[dict]:
    columns = CONTRACT[table].column_names
    if table == "store":
        rows = [{"store_key": k, "store_num": f"S{k:03d}", "store_desc": name, "city": f"City {k}",
                 "region": region} for k, (name, region) in STORES.items()]
    elif table == "product":
        rows = [{"prod_key": k, "prod_name": name, "brand_name": "Acme", "category_name": cat,
                 "category_key": 1 if cat == "Beverages" else 2, "subcategory_name": cat}
                for k, (name, cat) in PRODUCTS.items()]
    else:
        rows = [{"cal_dt": WEEKS[0] + dt.timedelta(days=d), "day_of_wk_num": d % 7} for d in range(21)]
    return [{c: row.get(c) for c in columns} for row in rows]


def write(path: Path) -> Path:
    """Create (or replace) the warehouse file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with duckdb.connect(str(path)) as con:
        ddl = ", ".join(f"{n} {t}" for n, t in FACT_SCHEMA)
        con.execute(f"CREATE TABLE weekly_sales_inventory ({ddl})")
        names = [n for n, _ in FACT_SCHEMA]
        con.executemany(
            f"INSERT INTO weekly_sales_inventory VALUES ({', '.join('?' * len(names))})",
            [[row[n] for n in names] for row in fact_rows()])
        for table in ("store", "product", "calendar"):
            cols = CONTRACT[table].columns
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c.name} {_sql_type(c.type)}' for c in cols)})")
            rows = _dimension_rows(table)
            con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(cols))})",
                            [[r[c.name] for c in cols] for r in rows])
    return path
