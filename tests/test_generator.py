"""Tests of the synthetic raw-zone generator (salespipe_assets.datagen) against SPEC §1.

Small scales only; every expectation is derived from the contract or the documented
generation rules, never copied from a previous run's output.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from pathlib import Path

import duckdb
import pytest

from salespipe_assets.datagen import generate, n_products, n_stores, target_sales_rows
from spark_steps.contract import CONTRACT, DAILY_TABLES, LANDING_NAME, SNAPSHOT_TABLES, TABLES

START = dt.date(2024, 2, 25)  # a Sunday: two whole Sunday-Saturday weeks
DAYS = 14
SCALE = 0.002
SEED = 7
DAY_LIST = [START + dt.timedelta(days=i) for i in range(DAYS)]


@pytest.fixture(scope="module")
def lake(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("lake_a")
    report = generate(root, START, DAYS, scale=SCALE, seed=SEED, progress=False)
    assert len(report["files"]) == len(TABLES) * DAYS
    return root


@pytest.fixture(scope="module")
def db(lake):
    con = duckdb.connect()
    for t in TABLES:
        con.execute(
            f"CREATE TABLE {t}_raw AS SELECT * FROM read_csv('{lake}/raw/{t}_*.csv.gz', header=true,"
            " all_varchar=true, delim=',', quote='\"', escape='\"', filename=true)"
        )
    # typed views of the daily tables, with the file's date from its name
    for t in DAILY_TABLES:
        cols = ", ".join(f"CAST({c.name} AS {_sql_type(c.type)}) AS {c.name}" for c in CONTRACT[t].columns)
        con.execute(
            f"CREATE TABLE {t} AS SELECT {cols},"
            f" CAST(regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})', 1) AS DATE) AS file_dt FROM {t}_raw"
        )
    return con


def _sql_type(t: str) -> str:
    return {"bigint": "BIGINT", "int": "INTEGER", "date": "DATE", "boolean": "BOOLEAN",
            "string": "VARCHAR"}.get(t, t.upper())


def _files(root: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((root / "raw").iterdir())}


# -- files, determinism ---------------------------------------------------------------

def test_file_set_and_names(lake):
    names = sorted(p.name for p in (lake / "raw").iterdir())
    expected = sorted(f"{t}_{d.isoformat()}.csv.gz" for t in TABLES for d in DAY_LIST)
    assert names == expected
    assert all(LANDING_NAME.match(n) for n in names)


def test_gzip_header_is_reproducible(lake):
    for p in (lake / "raw").iterdir():
        head = p.read_bytes()[:10]
        assert head[:2] == b"\x1f\x8b"
        assert head[3] & 0x08 == 0, "no file name in the gzip header"
        assert head[4:8] == b"\0\0\0\0", "mtime 0"


def test_byte_identical_across_runs(lake, tmp_path):
    generate(tmp_path, START, DAYS, scale=SCALE, seed=SEED, progress=False)
    assert _files(tmp_path) == _files(lake)


def test_day_subset_equals_slice_of_full_run(lake, tmp_path):
    # days 10..12 alone (mid replenishment cycle, mid week) equal those days of the 14-day run
    generate(tmp_path, START + dt.timedelta(days=9), 3, scale=SCALE, seed=SEED, progress=False)
    sub = _files(tmp_path)
    full = _files(lake)
    assert len(sub) == 15
    for name, data in sub.items():
        assert data == full[name], name


def test_seed_changes_data(lake, tmp_path):
    generate(tmp_path, START, 1, scale=SCALE, seed=SEED + 1, progress=False)
    name = f"sales_{START.isoformat()}.csv.gz"
    assert (tmp_path / "raw" / name).read_bytes() != (lake / "raw" / name).read_bytes()


def test_no_temp_files_left(lake):
    assert not [p for p in (lake / "raw").iterdir() if not p.name.endswith(".csv.gz")]


# -- format ---------------------------------------------------------------------------

def test_header_exact(lake):
    for p in (lake / "raw").iterdir():
        table = LANDING_NAME.match(p.name)["table"]
        with gzip.open(p, "rt", encoding="utf-8", newline="") as f:
            first = f.readline()
        assert first == CONTRACT[table].header + "\n", p.name


_FORMAT = {
    "bigint": r"-?\d+", "int": r"-?\d+", "date": r"\d{4}-\d{2}-\d{2}", "boolean": r"true|false",
}


def _format_regex(t: str) -> str | None:
    m = re.fullmatch(r"decimal\((\d+),(\d+)\)", t)
    if m:
        return rf"-?\d+\.\d{{{m[2]}}}"  # exactly the column's scale
    return _FORMAT.get(t)


@pytest.mark.parametrize("table", TABLES)
def test_every_value_parses_as_contract_type(db, table):
    checks, labels = [], []
    for col in CONTRACT[table].columns:
        checks.append(f"count(*) FILTER (WHERE {col.name} IS NOT NULL"
                      f" AND TRY_CAST({col.name} AS {_sql_type(col.type)}) IS NULL)")
        labels.append(f"{col.name} does not parse as {col.type}")
        rx = _format_regex(col.type)
        if rx:  # and is written in its canonical form (decimals: exactly the column's scale)
            checks.append(f"count(*) FILTER (WHERE NOT regexp_full_match({col.name}, '{rx}'))")
            labels.append(f"{col.name} not in canonical form {rx}")
        else:  # strings: never empty (an empty field means null)
            checks.append(f"count(*) FILTER (WHERE {col.name} = '')")
            labels.append(f"{col.name} empty string")
    counts = db.execute(f"SELECT {', '.join(checks)} FROM {table}_raw").fetchone()
    assert {lab: c for lab, c in zip(labels, counts) if c} == {}


def test_field_count_and_quoting_only_when_needed(lake):
    quoted = re.compile(r'"((?:[^"]|"")*)"')
    seen_quoted = 0
    for t in TABLES:
        p = lake / "raw" / f"{t}_{START.isoformat()}.csv.gz"
        text = gzip.decompress(p.read_bytes()).decode("utf-8")
        assert text.endswith("\n") and "\r" not in text
        n_cols = len(CONTRACT[t].columns)
        for line in text.splitlines()[1:]:
            fields = quoted.sub("Q", line).split(",")
            assert len(fields) == n_cols, line
            for m in quoted.finditer(line):
                seen_quoted += 1
                assert "," in m[1] or '""' in m[1], f"needless quotes: {m[0]}"
    assert seen_quoted > 0  # some store addresses / product names do need quoting


# -- row rules (SPEC §2) ----------------------------------------------------------------

@pytest.mark.parametrize("table", DAILY_TABLES)
def test_required_non_negative_flags_and_business_date(db, table):
    spec = CONTRACT[table]
    for c in spec.required:
        assert db.execute(f"SELECT count(*) FROM {table} WHERE {c} IS NULL").fetchone()[0] == 0, c
    for c in spec.non_negative:
        assert db.execute(f"SELECT count(*) FROM {table} WHERE {c} < 0").fetchone()[0] == 0, c
    for c in spec.flag_01:
        assert db.execute(f"SELECT count(*) FROM {table} WHERE {c} NOT IN (0, 1)").fetchone()[0] == 0, c
    col = spec.business_date_column
    assert db.execute(f"SELECT count(*) FROM {table} WHERE {col} <> file_dt").fetchone()[0] == 0
    assert db.execute(f"SELECT count(DISTINCT file_dt) FROM {table}").fetchone()[0] == DAYS


@pytest.mark.parametrize("table", TABLES)
def test_unique_keys_across_all_days(db, table):
    key = ", ".join(CONTRACT[table].unique_key)
    src = table if table in DAILY_TABLES else f"(SELECT * FROM {table}_raw WHERE filename LIKE '%{START}%')"
    dup = db.execute(f"SELECT count(*) FROM (SELECT {key} FROM {src} GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
    assert dup == 0


def test_snapshot_required_keys_present(db):
    for t in SNAPSHOT_TABLES:
        for c in CONTRACT[t].required:
            assert db.execute(f"SELECT count(*) FROM {t}_raw WHERE {c} IS NULL").fetchone()[0] == 0


# -- content rules ----------------------------------------------------------------------

def test_sales_arithmetic(db):
    row = db.execute("""
        SELECT count(*) FILTER (WHERE abs(sales_qty * sales_price - discount - sales_amt) > 0.01),
               count(*) FILTER (WHERE sales_mgrn <> sales_amt - sales_cost),
               count(*) FILTER (WHERE trans_time NOT BETWEEN 0 AND 86399),
               count(*) FILTER (WHERE sales_qty = 0 OR sales_price <= 0 OR discount < 0),
               count(*) FILTER (WHERE sales_cost < sales_amt) / count(*),
               count(*) FILTER (WHERE sales_mgrn < 0),
               count(*) FILTER (WHERE discount > 0),
               count(*) FILTER (WHERE sales_qty <> floor(sales_qty)) / count(*)
        FROM sales""").fetchone()
    assert row[:4] == (0, 0, 0, 0)
    assert row[4] > 0.9, "cost below amount for most lines"
    assert row[5] > 0, "some negative margins (deep discounts)"
    assert row[6] > 0
    assert 0 < row[7] < 0.5, "mostly whole units, some weighed products"


def test_trans_id_rule(db):
    # trans_id = day ordinal * 10**9 + row number within the day, in file order
    base = dt.date(1970, 1, 1).toordinal()
    bad = db.execute(f"""
        SELECT count(*) FROM sales
        WHERE trans_id // 1000000000 <> (epoch_ms(trans_dt) // 86400000) + {base}
    """).fetchone()[0]
    assert bad == 0


def test_sales_only_for_stocked_pairs_and_fixed_assortment(db):
    orphan = db.execute("""
        SELECT count(*) FROM sales s ANTI JOIN inventory i
        ON i.cal_dt = s.trans_dt AND i.store_key = s.store_key AND i.prod_key = s.prod_key
    """).fetchone()[0]
    assert orphan == 0
    # exactly one row per stocked pair per day: the same pair set every day
    per_day = db.execute("SELECT count(DISTINCT n) FROM (SELECT count(*) n FROM inventory GROUP BY cal_dt)").fetchone()[0]
    pairs = db.execute("SELECT count(*) FROM (SELECT DISTINCT store_key, prod_key FROM inventory)").fetchone()[0]
    rows = db.execute("SELECT count(*) FROM inventory").fetchone()[0]
    assert per_day == 1 and rows == pairs * DAYS
    n_s = db.execute("SELECT count(*) FROM store_raw WHERE filename LIKE ?", [f"%{START}%"]).fetchone()[0]
    n_p = db.execute("SELECT count(*) FROM product_raw WHERE filename LIKE ?", [f"%{START}%"]).fetchone()[0]
    assert 0.5 * n_s * n_p < pairs < n_s * n_p  # an assortment: most pairs, not all


def test_inventory_rules(db):
    row = db.execute("""
        SELECT count(*) FILTER (WHERE (out_of_stock_flg = 1) <> (inventory_on_hand_qty = 0)),
               count(*) FILTER (WHERE next_delivery_dt <= cal_dt),
               count(*) FILTER (WHERE waste_qty < 0),
               count(*) FILTER (WHERE promotion_flg IS NULL)
        FROM inventory""").fetchone()
    assert row == (0, 0, 0, 0)


def test_stock_carries_across_days(db):
    # Between deliveries (next_delivery_dt unchanged) stock only goes down, by exactly the
    # day's sales and waste; it can only go up on the delivery day.
    row = db.execute("""
        WITH d AS (SELECT trans_dt, store_key, prod_key, sum(sales_qty) q FROM sales GROUP BY ALL),
        i AS (SELECT i.*, coalesce(d.q, 0) q,
                     lag(inventory_on_hand_qty) OVER w prev_on_hand,
                     lag(next_delivery_dt) OVER w prev_next, lag(cal_dt) OVER w prev_dt
              FROM inventory i LEFT JOIN d
                ON d.trans_dt = i.cal_dt AND d.store_key = i.store_key AND d.prod_key = i.prod_key
              WINDOW w AS (PARTITION BY i.store_key, i.prod_key ORDER BY i.cal_dt))
        SELECT count(*) FILTER (WHERE prev_next = next_delivery_dt
                                  AND inventory_on_hand_qty <> prev_on_hand - q - waste_qty),
               count(*) FILTER (WHERE prev_next = next_delivery_dt),
               count(*) FILTER (WHERE prev_next <> next_delivery_dt AND prev_next <> cal_dt),
               count(*) FILTER (WHERE prev_next = cal_dt AND inventory_on_hand_qty > prev_on_hand)
        FROM i WHERE prev_dt IS NOT NULL""").fetchone()
    assert row[0] == 0
    assert row[1] > 0
    assert row[2] == 0, "the delivery date only changes on the delivery day"
    assert row[3] > 0, "deliveries restock"


def test_metrics_are_non_trivial(db):
    row = db.execute("""
        WITH d AS (SELECT trans_dt, store_key, prod_key, sum(sales_qty) q FROM sales GROUP BY ALL)
        SELECT count(*),
               count(*) FILTER (WHERE i.inventory_on_hand_qty < coalesce(d.q, 0)),
               count(*) FILTER (WHERE i.out_of_stock_flg = 1),
               count(*) FILTER (WHERE i.out_of_stock_flg = 1 AND d.q > 0),
               count(*) FILTER (WHERE i.promotion_flg),
               avg(coalesce(d.q, 0)) FILTER (WHERE i.promotion_flg),
               avg(coalesce(d.q, 0)) FILTER (WHERE NOT i.promotion_flg),
               count(*) FILTER (WHERE i.waste_qty > 0)
        FROM inventory i LEFT JOIN d
          ON d.trans_dt = i.cal_dt AND d.store_key = i.store_key AND d.prod_key = i.prod_key
    """).fetchone()
    n, low, oos, oos_sales, promo, q_promo, q_plain, waste = row
    assert 0.01 < low / n < 0.25, "several percent of pair-days are low stock"
    assert 0.003 < oos / n < 0.10, "a few percent are out of stock"
    assert oos_sales > 0, "some out-of-stock pair-days still have sales (no_stock_impact > 0)"
    assert 0.01 < promo / n < 0.2
    assert q_promo > q_plain, "promotions lift sales"
    assert waste > 0
    # weeks with an out-of-stock day: in_stock_pct < 1 for some pair-weeks
    assert db.execute("""
        SELECT count(*) FROM (SELECT date_trunc('week', cal_dt + 1) wk, store_key, prod_key
                              FROM inventory GROUP BY ALL HAVING sum(out_of_stock_flg) > 0)
    """).fetchone()[0] > 0


def test_weekday_and_intraday_patterns(db):
    by_dow = dict(db.execute("SELECT dayofweek(trans_dt), count(*) FROM sales GROUP BY 1").fetchall())
    assert by_dow[6] > by_dow[2] * 1.3, "Saturday busier than Tuesday"
    night, noon = db.execute("""
        SELECT count(*) FILTER (WHERE trans_time < 5 * 3600), count(*) FILTER (WHERE trans_time // 3600 = 12)
        FROM sales""").fetchone()
    assert noon > 5 * night


def test_snapshots_identical_every_day(lake):
    for t in ("store", "product"):
        blobs = {(lake / "raw" / f"{t}_{d.isoformat()}.csv.gz").read_bytes() for d in DAY_LIST}
        assert len(blobs) == 1, t


def test_store_and_product_dimensions(db):
    s = db.execute(f"SELECT * FROM store_raw WHERE filename LIKE '%{START}%'").df()
    assert s["region"].nunique() > 1 and s["store_type_cd"].nunique() > 1
    assert set(s["frnchs_flg"]) <= {"true", "false"}
    assert s["market_key"].notna().all() and s["submarket_key"].notna().all()
    lat, lon = s["latitude"].astype(float), s["longitude"].astype(float)
    assert lat.between(20, 60).all() and lon.between(-130, -60).all()
    # a market or submarket key always carries the same name
    assert (s.groupby("market_key")["market_name"].nunique() == 1).all()
    assert (s.groupby("submarket_key")["submarket_name"].nunique() == 1).all()
    p = db.execute(f"SELECT * FROM product_raw WHERE filename LIKE '%{START}%'").df()
    assert p["category_key"].nunique() > 3 and p["brand_name"].nunique() > 5
    assert (p.groupby("subcategory_key")["category_key"].nunique() == 1).all()
    assert (p.groupby("status_code")["status_code_name"].nunique() == 1).all()


def test_calendar_rules(db, lake):
    rows = db.execute(f"SELECT * FROM calendar_raw WHERE filename LIKE '%{START}%' ORDER BY cal_dt").fetchall()
    days = [dt.date.fromisoformat(r[0]) for r in rows]
    assert days[0] <= START and days[-1] >= DAY_LIST[-1]
    assert all((b - a).days == 1 for a, b in zip(days, days[1:])), "contiguous"
    names = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
    for r, d in zip(rows, days):
        _, _, dow, dow_desc, yr, wk, yr_wk, mon, yr_mon, q, yr_q = r[:11]
        sunday_based = (d.weekday() + 1) % 7
        jan1 = dt.date(d.year, 1, 1)
        week = ((d - jan1).days + (jan1.weekday() + 1) % 7) // 7 + 1  # week 1 holds 1 Jan, Sunday start
        assert int(dow) == sunday_based and dow_desc == names[sunday_based]
        assert int(yr) == d.year and int(mon) == d.month and int(q) == (d.month - 1) // 3 + 1
        assert int(wk) == week and int(yr_wk) == d.year * 100 + week
        assert int(yr_mon) == d.year * 100 + d.month and int(yr_q) == d.year * 10 + int(q)


# -- sizes --------------------------------------------------------------------------------

def test_dimension_sizes_per_scale():
    for s in (0.001, 0.005, 0.01):
        assert 5 <= n_stores(s) <= 20
        assert 50 <= n_products(s) <= 200
    assert n_stores(1) > 10 * n_stores(0.001) / 2 and n_products(1) >= 1000
    assert target_sales_rows(1) == 1_000_000 and target_sales_rows(0.5) == 500_000


def test_sales_rows_scale_roughly_linearly(tmp_path):
    # one whole week at the demo scale: rows/day within +-35 % of 1e6 * scale
    report = generate(tmp_path, dt.date(2024, 3, 3), 7, scale=0.01, seed=1, progress=False)
    per_day = report["rows"]["sales"] / 7
    assert 0.65 * 10_000 < per_day < 1.35 * 10_000
    assert report["rows"]["store"] == 7 * n_stores(0.01)
    assert report["rows"]["product"] == 7 * n_products(0.01)
    assert report["seconds"] < 20
