"""The DuckDB reference (SPEC §2 row rules, §3 weekly fact) on tiny hand-built files.

Every expected value is worked out by hand from the SPEC text; the arithmetic is in the
comments. Calendar used throughout:

    week A: Sun 2023-12-31 .. Sat 2024-01-06   (data starts Wed 2024-01-03: partial week)
    week B: Sun 2024-01-07 .. Sat 2024-01-13
"""

from __future__ import annotations

import gzip
from datetime import date
from decimal import Decimal

import duckdb
import pyarrow as pa
import pytest

from salespipe_assets.reference import reference_counts, reference_fact
from spark_steps.contract import INVENTORY, SALES

WEEK_A, WEEK_A_END = date(2023, 12, 31), date(2024, 1, 6)
WEEK_B, WEEK_B_END = date(2024, 1, 7), date(2024, 1, 13)

FACT_SCHEMA = pa.schema([
    ("week_start", pa.date32()), ("week_end", pa.date32()),
    ("store_key", pa.int32()), ("prod_key", pa.int32()),
    ("total_sales_qty", pa.decimal128(38, 2)), ("total_sales_amt", pa.decimal128(38, 2)),
    ("total_sales_cost", pa.decimal128(38, 2)), ("avg_sales_price", pa.float64()),
    ("eow_stock_on_hand_qty", pa.decimal128(38, 2)), ("eow_stock_on_order_qty", pa.decimal128(38, 2)),
    ("no_stock_instances", pa.int32()), ("low_stock_instances", pa.int32()),
    ("total_low_stock_impact", pa.int32()), ("in_stock_pct", pa.float64()),
    ("potential_low_stock_impact", pa.float64()), ("no_stock_impact", pa.decimal128(38, 2)),
    ("weeks_of_supply", pa.float64()),
])


# ---------------------------------------------------------------- fixture helpers

def sale(trans_id, day, store, prod, qty, amt, cost, **raw) -> str:
    """One sales CSV line; keyword arguments override any field with a raw string."""
    v = dict(trans_id=trans_id, prod_key=prod, store_key=store, trans_dt=day, trans_time=36000,
             sales_qty=qty, sales_price="", sales_amt=amt, discount="", sales_cost=cost,
             sales_mgrn="", ship_cost="")
    v.update(raw)
    return ",".join(str(v[c]) for c in SALES.column_names)


def inv(day, store, prod, on_hand, on_order=0, oos=0, **raw) -> str:
    """One inventory CSV line; keyword arguments override any field with a raw string."""
    v = dict(cal_dt=day, store_key=store, prod_key=prod, inventory_on_hand_qty=on_hand,
             inventory_on_order_qty=on_order, out_of_stock_flg=oos, waste_qty="",
             promotion_flg="false", next_delivery_dt="")
    v.update(raw)
    return ",".join(str(v[c]) for c in INVENTORY.column_names)


def write(raw, table, day, lines, *, gz=False, header=None, eol="\n"):
    header = header if header is not None else (SALES if table == "sales" else INVENTORY).header
    text = eol.join([header, *lines]) + eol
    path = raw / f"{table}_{day}.csv{'.gz' if gz else ''}"
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def fact_rows(raw) -> dict:
    t = reference_fact(raw)
    assert t.schema == FACT_SCHEMA
    keys = [(r["week_start"], r["store_key"], r["prod_key"]) for r in t.to_pylist()]
    assert keys == sorted(keys), "sorted by week_start, store_key, prod_key"
    return {k: r for k, r in zip(keys, t.to_pylist())}


D = Decimal


# ---------------------------------------------------------------- §3 metrics

def test_full_week_every_metric(tmp_path):
    # pair (1, 10), week B
    write(tmp_path, "sales", "2024-01-07", [sale(1, "2024-01-07", 1, 10, "3", "30.00", "18"),
                                            sale(2, "2024-01-07", 1, 10, "1", "10.50", "6")])
    write(tmp_path, "inventory", "2024-01-07", [inv("2024-01-07", 1, 10, "10", "5", 0)])
    write(tmp_path, "sales", "2024-01-08", [sale(3, "2024-01-08", 1, 10, "5", "50", "30")])
    write(tmp_path, "inventory", "2024-01-08", [inv("2024-01-08", 1, 10, "2", "0", 0)])
    write(tmp_path, "sales", "2024-01-09", [])
    write(tmp_path, "inventory", "2024-01-09", [inv("2024-01-09", 1, 10, "0", "8", 1)])
    write(tmp_path, "sales", "2024-01-10", [sale(4, "2024-01-10", 1, 10, "2", "20", "12")])
    write(tmp_path, "inventory", "2024-01-10", [inv("2024-01-10", 1, 10, "0", "8", 1)], gz=True)
    write(tmp_path, "inventory", "2024-01-13", [inv("2024-01-13", 1, 10, "7", "3", 0)])
    # day      day_qty day_amt day_cost  inv: on_hand oos  low_stock_flg
    # Sun 07   3+1=4   40.50   24             10      0    10 < 4 ? no  -> 0
    # Mon 08   5       50      30              2      0     2 < 5 ? yes -> 1
    # Tue 09   0       0       0               0      1     0 < 0 ? no  -> 0
    # Wed 10   2       20      12              0      1     0 < 2 ? yes -> 1
    # Sat 13   0       0       0               7      0     7 < 0 ? no  -> 0
    rows = fact_rows(tmp_path)
    assert list(rows) == [(WEEK_B, 1, 10)]
    r = rows[(WEEK_B, 1, 10)]
    assert r["week_end"] == WEEK_B_END
    assert r["total_sales_qty"] == D("11.00")                  # 4 + 5 + 0 + 2 + 0
    assert r["total_sales_amt"] == D("110.50")                 # 40.50 + 50 + 20
    assert r["total_sales_cost"] == D("66.00")                 # 24 + 30 + 12
    assert r["avg_sales_price"] == pytest.approx(110.5 / 11)   # 10.0454...
    assert r["eow_stock_on_hand_qty"] == D("7.00")             # Sat 13 is the latest row
    assert r["eow_stock_on_order_qty"] == D("3.00")
    assert r["no_stock_instances"] == 2                        # Tue + Wed
    assert r["low_stock_instances"] == 2                       # Mon + Wed
    assert r["total_low_stock_impact"] == 4                    # 2 + 2
    assert r["in_stock_pct"] == pytest.approx(5 / 7)           # (7 - 2) / 7
    # Mon: 50 * (1 - 2/5) = 30 ; Wed: 20 * (1 - 0/2) = 20 ; 30 + 20 = 50
    assert r["potential_low_stock_impact"] == pytest.approx(50.0)
    assert r["no_stock_impact"] == D("20.00")                  # day_amt of Tue (0) + Wed (20)
    assert r["weeks_of_supply"] == pytest.approx(7 / 11)       # eow 7 / total qty 11


def test_partial_first_week_and_saturday_without_inventory(tmp_path):
    # data starts Wed 2024-01-03; the week is still Sun 2023-12-31 .. Sat 2024-01-06
    write(tmp_path, "sales", "2024-01-03", [sale(1, "2024-01-03", 1, 10, "2", "8", "4")])
    write(tmp_path, "inventory", "2024-01-03", [inv("2024-01-03", 1, 10, "9", "1", 0)])
    write(tmp_path, "inventory", "2024-01-04", [inv("2024-01-04", 1, 10, "6", "2", 0)])
    write(tmp_path, "sales", "2024-01-06", [sale(7, "2024-01-06", 1, 10, "1", "4", "2")])
    write(tmp_path, "inventory", "2024-01-06", [])  # Saturday: no inventory row for the pair
    # and one sale the next day (Sun 01-07) lands in week B, not A
    write(tmp_path, "sales", "2024-01-07", [sale(1, "2024-01-07", 1, 10, "1", "5", "3")])
    rows = fact_rows(tmp_path)
    assert list(rows) == [(WEEK_A, 1, 10), (WEEK_B, 1, 10)]
    a = rows[(WEEK_A, 1, 10)]
    assert (a["week_start"], a["week_end"]) == (WEEK_A, WEEK_A_END)
    assert a["total_sales_qty"] == D("3.00")                   # 2 + 1
    assert a["total_sales_amt"] == D("12.00")                  # 8 + 4
    assert a["total_sales_cost"] == D("6.00")                  # 4 + 2
    assert a["avg_sales_price"] == pytest.approx(4.0)          # 12 / 3
    # latest inventory row of the week is Thu 01-04 (Saturday has none)
    assert a["eow_stock_on_hand_qty"] == D("6.00")
    assert a["eow_stock_on_order_qty"] == D("2.00")
    assert a["no_stock_instances"] == 0
    assert a["low_stock_instances"] == 0                       # Wed: 9 < 2 no; Thu: 6 < 0 no; Sat: no inv
    assert a["total_low_stock_impact"] == 0
    assert a["in_stock_pct"] == pytest.approx(1.0)             # (7 - 0) / 7, not scaled to 4 days
    assert a["potential_low_stock_impact"] == 0.0
    assert a["no_stock_impact"] == D("0.00")
    assert a["weeks_of_supply"] == pytest.approx(2.0)          # 6 / 3
    b = rows[(WEEK_B, 1, 10)]
    assert b["total_sales_qty"] == D("1.00") and b["eow_stock_on_hand_qty"] is None
    assert b["in_stock_pct"] is None and b["weeks_of_supply"] is None   # no inventory in week B


def test_pair_with_only_inventory_rows(tmp_path):
    write(tmp_path, "inventory", "2024-01-08", [inv("2024-01-08", 2, 20, "4", "1", 0)])
    write(tmp_path, "inventory", "2024-01-09", [inv("2024-01-09", 2, 20, "0", "6", 1)])
    # day_qty = day_amt = 0 on both days: low = (4 < 0), (0 < 0) -> 0, 0
    r = fact_rows(tmp_path)[(WEEK_B, 2, 20)]
    assert (r["total_sales_qty"], r["total_sales_amt"], r["total_sales_cost"]) == (D("0.00"),) * 3
    assert r["avg_sales_price"] is None                        # total qty = 0
    assert r["eow_stock_on_hand_qty"] == D("0.00")             # Tue 09 row
    assert r["eow_stock_on_order_qty"] == D("6.00")
    assert r["no_stock_instances"] == 1
    assert r["low_stock_instances"] == 0
    assert r["total_low_stock_impact"] == 1
    assert r["in_stock_pct"] == pytest.approx(6 / 7)           # (7 - 1) / 7
    assert r["potential_low_stock_impact"] == 0.0
    assert r["no_stock_impact"] == D("0.00")                   # out of stock, but day_amt = 0
    assert r["weeks_of_supply"] is None                        # total qty = 0


def test_pairs_with_only_sales_rows_and_zero_quantity(tmp_path):
    write(tmp_path, "sales", "2024-01-08", [
        sale(1, "2024-01-08", 3, 30, "2", "9.99", "5"),
        sale(2, "2024-01-08", 3, 31, "0", "0", "0"),       # a zero-quantity sale still makes a row
    ])
    write(tmp_path, "inventory", "2024-01-08", [])
    rows = fact_rows(tmp_path)
    assert list(rows) == [(WEEK_B, 3, 30), (WEEK_B, 3, 31)]
    r = rows[(WEEK_B, 3, 30)]
    assert r["total_sales_qty"] == D("2.00") and r["total_sales_amt"] == D("9.99")
    assert r["total_sales_cost"] == D("5.00")
    assert r["avg_sales_price"] == pytest.approx(4.995)        # 9.99 / 2
    assert r["eow_stock_on_hand_qty"] is None and r["eow_stock_on_order_qty"] is None
    assert r["no_stock_instances"] == 0 and r["low_stock_instances"] == 0  # no inventory: 0, not null
    assert r["total_low_stock_impact"] == 0
    assert r["in_stock_pct"] is None                           # no inventory row in the week
    assert r["potential_low_stock_impact"] == 0.0
    assert r["no_stock_impact"] == D("0.00")
    assert r["weeks_of_supply"] is None                        # eow is null
    z = rows[(WEEK_B, 3, 31)]
    assert z["total_sales_qty"] == D("0.00")
    assert z["avg_sales_price"] is None and z["weeks_of_supply"] is None   # total qty = 0


def test_low_stock_compares_with_the_days_summed_quantity(tmp_path):
    # two sales of 3 on one day: day_qty = 6; on_hand 5 < 6 -> low, although 5 >= 3 per row
    write(tmp_path, "sales", "2024-01-11", [sale(1, "2024-01-11", 4, 40, "3", "6", "1"),
                                            sale(2, "2024-01-11", 4, 40, "3", "6", "1")])
    # on_hand equal to day_qty is not low: 2 < 2 false (other pair)
    write(tmp_path, "inventory", "2024-01-11", [inv("2024-01-11", 4, 40, "5", "0", 0)])
    write(tmp_path, "sales", "2024-01-12", [sale(3, "2024-01-12", 4, 41, "2", "7", "1")])
    write(tmp_path, "inventory", "2024-01-12", [inv("2024-01-12", 4, 41, "2", "0", 0)])
    rows = fact_rows(tmp_path)
    r = rows[(WEEK_B, 4, 40)]
    assert r["low_stock_instances"] == 1
    assert r["potential_low_stock_impact"] == pytest.approx(12 * (1 - 5 / 6))  # day_amt 12 -> 2.0
    assert r["weeks_of_supply"] == pytest.approx(5 / 6)
    e = rows[(WEEK_B, 4, 41)]
    assert e["low_stock_instances"] == 0 and e["potential_low_stock_impact"] == 0.0


def test_out_of_stock_every_day_and_low_stock_on_the_same_day(tmp_path):
    # 7 inventory rows, all out_of_stock_flg = 1, on_hand 0; a sale of 1 (amt 2.50) on Mon
    for d in range(7, 14):
        day = f"2024-01-{d:02d}"
        write(tmp_path, "inventory", day, [inv(day, 5, 50, "0", "1", 1)])
    write(tmp_path, "sales", "2024-01-08", [sale(1, "2024-01-08", 5, 50, "1", "2.50", "1")])
    r = fact_rows(tmp_path)[(WEEK_B, 5, 50)]
    assert r["no_stock_instances"] == 7
    assert r["low_stock_instances"] == 1                       # Mon: 0 < 1
    assert r["total_low_stock_impact"] == 8                    # 7 + 1
    assert r["in_stock_pct"] == 0.0                            # (7 - 7) / 7
    assert r["potential_low_stock_impact"] == pytest.approx(2.5)   # 2.50 * (1 - 0/1)
    assert r["no_stock_impact"] == D("2.50")
    assert r["weeks_of_supply"] == 0.0                         # 0 / 1


# ---------------------------------------------------------------- §2 row rules

def test_bad_sales_rows(tmp_path):
    day = "2024-01-08"
    lines = [
        sale(1, day, 1, 10, "1", "1", "1"),                     # line 2: accepted (qty 1)
        sale("abc", day, 1, 10, "2", "1", "1"),                 # bigint does not parse
        sale(3, day, 1, "9999999999", "2", "1", "1"),           # int out of int32 range
        sale(4, day, 1, 10, "1e3", "1", "1"),                   # decimal with exponent
        sale(5, "2024-02-30", 1, 10, "2", "1", "1"),            # not a calendar date
        sale(6, "2024/01/08", 1, 10, "2", "1", "1"),            # not ISO
        sale(7, day, 1, 10, " 2", "1", "1"),                    # surrounding space
        sale(8, day, 1, 10, "2", "1", "1", trans_time="12.5"),  # optional int column bad
        sale(9, day, 1, 10, "2", "1", "1", ship_cost="x"),      # optional decimal column bad
        sale(10, "", 1, 10, "2", "1", "1"),                     # required trans_dt null
        sale(11, day, "", 10, "2", "1", "1"),                   # required store_key null
        sale(12, day, 1, 10, "", "1", "1"),                     # required sales_qty null
        sale(13, day, 1, 10, "2", "1", ""),                     # required sales_cost null
        sale(14, day, 1, 10, "-2", "1", "1"),                   # negative qty
        sale(15, day, 1, 10, "2", "-1.00", "1"),                # negative amt
        sale(16, day, 1, 10, "2", "1", "-0.5"),                 # negative cost
        sale(17, "2024-01-09", 1, 10, "2", "1", "1"),           # trans_dt is not the file's date
        sale(1, day, 1, 10, "2", "1", "1"),                     # repeat of trans_id 1
        sale(18, day, 1, 10, "2", "1", "1")[:-1],               # 11 fields
        sale(19, day, 1, 10, "2", "1", "1") + ",extra",          # 13 fields
        sale(25, day, 1, 10, "2", "1", "1") + ",",               # 13 fields, the last empty
        "",                                                      # blank line: not a row
        sale(20, day, 1, 10, "-8", "1", "1"),                   # invalid (negative) first ...
        sale(20, day, 1, 10, "4", "1", "1"),                    # ... so this one is kept (qty 4)
        sale(21, day, 1, 10, "8", "1", "1", sales_mgrn="-3.50", discount="-1"),  # negatives allowed here
        sale(22, day, 1, 10, "+16", "1", "1"),                  # explicit sign parses
        sale(23, day, 1, 10, "-0.001", "1", "1"),               # rounds to 0.00: not negative
        sale(24, day, 1, 10, ".5", "1.005", "1"),               # .5 parses; 1.005 -> 1.01 (half up)
    ]
    write(tmp_path, "sales", day, lines)
    # rows: 28 lines minus 1 blank = 27; accepted: 1, 20, 21, 22, 23, 24 = 6; rejected 21
    assert reference_counts(tmp_path) == {
        f"sales_{day}.csv": {"read": 27, "accepted": 6, "rejected": 21}}
    r = fact_rows(tmp_path)[(WEEK_B, 1, 10)]
    # qty: 1 + 4 + 8 + 16 + 0.00 + 0.50 = 29.50 (the repeat of id 1 would add 2, id 20's
    # invalid first copy -8)
    assert r["total_sales_qty"] == D("29.50")
    assert r["total_sales_amt"] == D("6.01")                    # 1+1+1+1+1+1.01


def test_bad_inventory_rows(tmp_path):
    day = "2024-01-08"
    lines = [
        inv(day, 1, 10, "5", "1", 0),                           # accepted, first of its key
        inv(day, 1, 10, "99", "1", 1),                          # repeat key -> rejected
        inv(day, 1, 11, "1", "1", 2),                           # flag not 0/1
        inv(day, 1, 11, "1", "1", ""),                          # flag null (required)
        inv(day, 1, 11, "1", "1", "true"),                      # flag not an int
        inv(day, 1, 11, "", "1", 0),                            # on_hand null (required)
        inv(day, 1, 11, "1", "", 0),                            # on_order null (required)
        inv(day, 1, 11, "-1", "1", 0),                          # on_hand negative
        inv(day, 1, 11, "1", "-0.01", 0),                       # on_order negative
        inv(day, 1, 11, "1", "1", 0, promotion_flg="yes"),      # boolean does not parse
        inv(day, 1, 11, "1", "1", 0, next_delivery_dt="2024-13-01"),  # not a date
        inv("2024-01-07", 1, 11, "1", "1", 0),                  # cal_dt not the file's date
        inv(day, 1, 11, "1", "1", 0) + ",",                     # 10 fields
        inv(day, 1, 12, "3", "1", 7),                           # invalid first ...
        inv(day, 1, 12, "4", "2", 0),                           # ... so this is kept
        inv(day, 1, 13, "2", "1", 0, waste_qty="-2", promotion_flg="TRUE",
            next_delivery_dt="2024-01-10"),                     # accepted: waste may be negative
    ]
    write(tmp_path, "inventory", day, lines)
    # 16 rows; accepted: (1,10) first, (1,12) second, (1,13) = 3; rejected 13
    assert reference_counts(tmp_path) == {
        f"inventory_{day}.csv": {"read": 16, "accepted": 3, "rejected": 13}}
    rows = fact_rows(tmp_path)
    assert list(rows) == [(WEEK_B, 1, 10), (WEEK_B, 1, 12), (WEEK_B, 1, 13)]  # no (1, 11)
    assert rows[(WEEK_B, 1, 10)]["eow_stock_on_hand_qty"] == D("5.00")      # not the repeat's 99
    assert rows[(WEEK_B, 1, 10)]["no_stock_instances"] == 0
    assert rows[(WEEK_B, 1, 12)]["eow_stock_on_hand_qty"] == D("4.00")


def test_csv_dialect_gzip_crlf_quotes_and_empty_quoted(tmp_path):
    day = "2024-01-09"
    write(tmp_path, "sales", day, [
        '"1","10","1","2024-01-09","","3","","7.5","","2","",""',   # quoted values parse; "" = null
        '2,10,1,2024-01-09,,"1,5",,1,,1,,',                         # "1,5" is one bad decimal field
    ], gz=True, eol="\r\n")
    assert reference_counts(tmp_path) == {
        f"sales_{day}.csv.gz": {"read": 2, "accepted": 1, "rejected": 1}}
    r = fact_rows(tmp_path)[(WEEK_B, 1, 10)]
    assert r["total_sales_qty"] == D("3.00") and r["total_sales_amt"] == D("7.50")


# ---------------------------------------------------------------- §2 file level

def test_file_level_errors_skip_the_whole_file(tmp_path):
    good = write(tmp_path, "sales", "2024-01-08", [sale(1, "2024-01-08", 1, 10, "1", "2", "1")])
    write(tmp_path, "inventory", "2024-01-08", [])                     # header only: fine, 0 rows
    # wrong header (two columns swapped)
    cols = SALES.column_names
    write(tmp_path, "sales", "2024-01-09", [sale(1, "2024-01-09", 1, 10, "5", "5", "5")],
          header=",".join([cols[1], cols[0], *cols[2:]]))
    # missing header: the first line is data
    (tmp_path / "sales_2024-01-10.csv").write_text(sale(1, "2024-01-10", 1, 10, "5", "5", "5") + "\n")
    # not gzip at all, and a truncated gzip
    (tmp_path / "inventory_2024-01-10.csv.gz").write_bytes(b"not gzip data")
    blob = gzip.compress((INVENTORY.header + "\n" + inv("2024-01-11", 1, 10, "5") + "\n").encode())
    (tmp_path / "inventory_2024-01-11.csv.gz").write_bytes(blob[:-12])
    # a date in the name that is not a date
    write(tmp_path, "sales", "2024-02-30", [sale(1, "2024-02-30", 1, 10, "5", "5", "5")])
    (tmp_path / "sales_20240111.csv").write_text(SALES.header + "\n")
    # empty file (no header), plain and gzipped
    (tmp_path / "sales_2024-01-12.csv").write_bytes(b"")
    (tmp_path / "inventory_2024-01-12.csv.gz").write_bytes(gzip.compress(b""))
    # bytes that are not UTF-8 in a data row
    path = write(tmp_path, "inventory", "2024-01-13", [inv("2024-01-13", 1, 10, "5")])
    path.write_bytes(path.read_bytes().replace(b"false", b"f\xe9lse"))
    # two files for the same table and day
    write(tmp_path, "sales", "2024-01-13", [sale(1, "2024-01-13", 1, 10, "5", "5", "5")])
    write(tmp_path, "sales", "2024-01-13", [sale(1, "2024-01-13", 1, 10, "5", "5", "5")], gz=True)

    counts = reference_counts(tmp_path)
    assert counts[good.name] == {"read": 1, "accepted": 1, "rejected": 0}
    assert counts["inventory_2024-01-08.csv"] == {"read": 0, "accepted": 0, "rejected": 0}
    refused = {"sales_2024-01-09.csv", "sales_2024-01-10.csv", "inventory_2024-01-10.csv.gz",
               "inventory_2024-01-11.csv.gz", "sales_2024-02-30.csv", "sales_20240111.csv",
               "sales_2024-01-12.csv", "inventory_2024-01-12.csv.gz",
               "sales_2024-01-13.csv", "sales_2024-01-13.csv.gz", "inventory_2024-01-13.csv"}
    assert set(counts) == refused | {good.name, "inventory_2024-01-08.csv"}
    for name in refused:
        c = counts[name]
        assert c["error"] and (c["read"], c["accepted"], c["rejected"]) == (0, 0, 0), name
    assert "header" in counts["sales_2024-01-09.csv"]["error"]
    assert "header" in counts["sales_2024-01-10.csv"]["error"]
    assert "gzip" in counts["inventory_2024-01-10.csv.gz"]["error"]
    assert "gzip" in counts["inventory_2024-01-11.csv.gz"]["error"]
    assert "date" in counts["sales_2024-02-30.csv"]["error"]
    assert "empty" in counts["sales_2024-01-12.csv"]["error"]
    assert "empty" in counts["inventory_2024-01-12.csv.gz"]["error"]
    assert "UTF-8" in counts["inventory_2024-01-13.csv"]["error"]
    assert "more than one" in counts["sales_2024-01-13.csv.gz"]["error"]
    # only the good file contributes: qty 1, amt 2
    rows = fact_rows(tmp_path)
    assert list(rows) == [(WEEK_B, 1, 10)]
    assert rows[(WEEK_B, 1, 10)]["total_sales_qty"] == D("1.00")
    assert rows[(WEEK_B, 1, 10)]["total_sales_amt"] == D("2.00")


# ---------------------------------------------------------------- API

def test_empty_dir_gives_empty_typed_fact(tmp_path):
    t = reference_fact(tmp_path)
    assert t.num_rows == 0 and t.schema == FACT_SCHEMA
    assert reference_counts(tmp_path) == {}


def test_given_connection_is_left_clean(tmp_path):
    write(tmp_path, "sales", "2024-01-08", [sale(1, "2024-01-08", 1, 10, "1", "2", "1")])
    con = duckdb.connect()
    assert reference_fact(str(tmp_path), con).num_rows == 1
    assert reference_counts(str(tmp_path), con)["sales_2024-01-08.csv"]["accepted"] == 1
    assert con.execute("SELECT count(*) FROM duckdb_tables()").fetchone()[0] == 0
    assert con.execute("SELECT count(*) FROM duckdb_views() WHERE NOT internal").fetchone()[0] == 0
