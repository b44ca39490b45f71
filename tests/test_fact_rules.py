"""SPEC §3 on hand-built accepted rows, through the real Spark fact (local mode).

Every expected value is worked out here from the rule, with the arithmetic in a comment.
"""

import datetime as dt
import json
from decimal import Decimal as D

import duckdb
import pytest
from pyspark.sql import types as T

from spark_steps import build_weekly_fact
from spark_steps.contract import INVENTORY, SALES
from spark_steps.fact import FACT_COLUMNS, weekly_fact
from spark_steps.lakefs import LakeFS
from spark_steps.runtime import StepFailed
from spark_steps.validate import spark_type

d = dt.date.fromisoformat
SUN, MON, TUE, WED, THU, FRI, SAT = (d("2024-01-07") + dt.timedelta(days=i) for i in range(7))
NEXT_SUN = d("2024-01-14")


def _schema(table):
    return T.StructType([T.StructField(c.name, spark_type(c.type)) for c in table.columns])


def sale(tid, day, store, prod, qty, amt, cost):
    return (tid, prod, store, day, 0, D(qty), D("0"), D(amt), D("0"), D(cost), D("0"), D("0"))


def inv(day, store, prod, on_hand, on_order, oos):
    return (day, store, prod, D(on_hand), D(on_order), oos, D("0"), False, None)


def _fact(spark, sales, inventory) -> dict[tuple, dict]:
    sales_df = spark.createDataFrame(sales, _schema(SALES))
    inv_df = spark.createDataFrame(inventory, _schema(INVENTORY))
    rows = weekly_fact(sales_df, inv_df).collect()
    return {(r["week_start"], r["store_key"], r["prod_key"]): r.asDict() for r in rows}


SALES_ROWS = [
    # pair (1, 10): Monday 2 + Tuesday 3 units (two rows on Tuesday)
    sale(1, MON, 1, 10, "2.00", "10.00", "6.00"),
    sale(2, TUE, 1, 10, "1.00", "5.00", "3.00"),
    sale(3, TUE, 1, 10, "2.00", "10.00", "6.00"),
    # pair (1, 11): sells 1 unit on Wednesday while out of stock
    sale(4, WED, 1, 11, "1.00", "7.00", "4.00"),
    # pair (2, 10): only sales, no inventory rows at all
    sale(5, FRI, 2, 10, "4.00", "8.00", "5.00"),
    # pair (2, 12): a zero-quantity row (a free sample): amount but no units
    sale(6, THU, 2, 12, "0.00", "0.00", "0.00"),
    # pair (3, 10): sells on Saturday and on the next Sunday: two weeks
    sale(7, SAT, 3, 10, "1.00", "2.00", "1.00"),
    sale(8, NEXT_SUN, 3, 10, "3.00", "9.00", "4.00"),
]
INVENTORY_ROWS = [
    inv(MON, 1, 10, "5.00", "1.00", 0),   # 5 >= day_qty 2: not low
    inv(TUE, 1, 10, "1.00", "4.00", 0),   # 1 <  day_qty 3: low stock
    inv(WED, 1, 11, "0.00", "6.00", 1),   # out of stock, and 0 < day_qty 1: low stock too
    inv(THU, 1, 11, "2.00", "3.00", 0),   # no sales that day: day_qty 0, 2 < 0 false
    inv(FRI, 1, 12, "9.00", "0.00", 0),   # pair (1, 12): inventory only, Saturday missing
    inv(SUN, 1, 12, "10.00", "0.00", 1),
    inv(SAT, 3, 10, "0.50", "0.00", 0),   # 0.5 < 1: low stock on Saturday
]


@pytest.fixture(scope="module")
def fact(spark):
    return _fact(spark, SALES_ROWS, INVENTORY_ROWS)


def test_grain_is_every_pair_week_with_any_accepted_row(fact):
    assert sorted(fact) == sorted([
        (SUN, 1, 10), (SUN, 1, 11), (SUN, 1, 12), (SUN, 2, 10), (SUN, 2, 12), (SUN, 3, 10), (NEXT_SUN, 3, 10),
    ])
    for (week, _, _), row in fact.items():
        assert row["week_end"] == week + dt.timedelta(days=6)
        assert list(row) == FACT_COLUMNS


def test_sales_totals_and_average_price(fact):
    r = fact[(SUN, 1, 10)]
    assert r["total_sales_qty"] == D("5.00")      # 2 + 1 + 2
    assert r["total_sales_amt"] == D("25.00")     # 10 + 5 + 10
    assert r["total_sales_cost"] == D("15.00")    # 6 + 3 + 6
    assert r["avg_sales_price"] == pytest.approx(25 / 5)


def test_end_of_week_stock_is_the_latest_inventory_row(fact):
    r = fact[(SUN, 1, 10)]
    assert (r["eow_stock_on_hand_qty"], r["eow_stock_on_order_qty"]) == (D("1.00"), D("4.00"))  # Tuesday's row
    # pair (1, 12): no Saturday row, so Friday's row is the week's latest
    r = fact[(SUN, 1, 12)]
    assert (r["eow_stock_on_hand_qty"], r["eow_stock_on_order_qty"]) == (D("9.00"), D("0.00"))


def test_low_stock_and_its_potential_impact(fact):
    r = fact[(SUN, 1, 10)]
    assert r["low_stock_instances"] == 1          # Tuesday only
    assert r["no_stock_instances"] == 0
    assert r["total_low_stock_impact"] == 1
    # Tuesday: day_amt 15 x (1 - on_hand 1 / day_qty 3) = 10
    assert r["potential_low_stock_impact"] == pytest.approx(15 * (1 - 1 / 3))
    assert r["weeks_of_supply"] == pytest.approx(1 / 5)   # eow on hand 1 / total qty 5
    assert r["in_stock_pct"] == pytest.approx(7 / 7)


def test_out_of_stock_day_with_sales(fact):
    r = fact[(SUN, 1, 11)]
    assert r["no_stock_instances"] == 1                   # Wednesday's flag
    assert r["low_stock_instances"] == 1                  # Wednesday: 0 < 1; Thursday: 2 < 0 is false
    assert r["total_low_stock_impact"] == 2
    assert r["in_stock_pct"] == pytest.approx((7 - 1) / 7)
    assert r["no_stock_impact"] == D("7.00")              # Wednesday's day_amt
    assert r["potential_low_stock_impact"] == pytest.approx(7 * (1 - 0 / 1))
    assert r["eow_stock_on_hand_qty"] == D("2.00")        # Thursday is the latest row
    assert r["weeks_of_supply"] == pytest.approx(2 / 1)


def test_inventory_only_pair(fact):
    r = fact[(SUN, 1, 12)]
    assert (r["total_sales_qty"], r["total_sales_amt"], r["total_sales_cost"]) == (D("0.00"),) * 3
    assert r["avg_sales_price"] is None                   # total qty 0
    assert r["weeks_of_supply"] is None                   # total qty 0
    assert r["no_stock_instances"] == 1                   # Sunday's flag
    assert r["no_stock_impact"] == D("0.00")              # no sales on that day
    assert r["low_stock_instances"] == 0 and r["potential_low_stock_impact"] == 0.0
    assert r["in_stock_pct"] == pytest.approx(6 / 7)


def test_sales_only_pair_has_null_stock_metrics(fact):
    r = fact[(SUN, 2, 10)]
    assert r["eow_stock_on_hand_qty"] is None and r["eow_stock_on_order_qty"] is None
    assert r["in_stock_pct"] is None                      # no inventory row in the week
    assert r["weeks_of_supply"] is None                   # eow is null
    assert (r["no_stock_instances"], r["low_stock_instances"], r["total_low_stock_impact"]) == (0, 0, 0)
    assert r["no_stock_impact"] == D("0.00") and r["potential_low_stock_impact"] == 0.0
    assert r["avg_sales_price"] == pytest.approx(8 / 4)


def test_zero_quantity_week_has_null_average_price(fact):
    r = fact[(SUN, 2, 12)]
    assert r["total_sales_qty"] == D("0.00") and r["avg_sales_price"] is None


def test_saturday_and_next_sunday_fall_in_different_weeks(fact):
    sat, sun = fact[(SUN, 3, 10)], fact[(NEXT_SUN, 3, 10)]
    assert sat["total_sales_qty"] == D("1.00") and sun["total_sales_qty"] == D("3.00")
    assert sat["low_stock_instances"] == 1                # Saturday 0.5 < 1
    assert sat["potential_low_stock_impact"] == pytest.approx(2 * (1 - 0.5 / 1))
    assert sun["eow_stock_on_hand_qty"] is None and sun["in_stock_pct"] is None


def test_partial_first_week_starts_on_the_sunday_before(spark):
    # data begins on a Thursday: the week is still keyed by its Sunday
    fact = _fact(spark, [sale(1, THU, 1, 1, "1.00", "3.00", "1.00")], [inv(FRI, 1, 1, "4.00", "0.00", 0)])
    assert list(fact) == [(SUN, 1, 1)]
    assert fact[(SUN, 1, 1)]["week_end"] == SAT


def test_fact_column_types(spark):
    schema = weekly_fact(spark.createDataFrame([], _schema(SALES)), spark.createDataFrame([], _schema(INVENTORY))).schema
    types = {f.name: f.dataType.simpleString() for f in schema.fields}
    assert types == {
        "week_start": "date", "week_end": "date", "store_key": "int", "prod_key": "int",
        "total_sales_qty": "decimal(38,2)", "total_sales_amt": "decimal(38,2)", "total_sales_cost": "decimal(38,2)",
        "avg_sales_price": "double", "eow_stock_on_hand_qty": "decimal(38,2)", "eow_stock_on_order_qty": "decimal(38,2)",
        "no_stock_instances": "int", "low_stock_instances": "int", "total_low_stock_impact": "int",
        "in_stock_pct": "double", "potential_low_stock_impact": "double", "no_stock_impact": "decimal(38,2)",
        "weeks_of_supply": "double",
    }


def _write_staged(spark, lake, table, schema, rows, day):
    df = spark.createDataFrame(rows, schema)
    df.coalesce(1).write.parquet(f"file://{lake}/staged/{table}/business_date={day}")
    (lake / "staged" / table / f"business_date={day}" / "_manifest.json").write_text("{}")


def test_published_week_is_hive_partitioned_with_manifest_and_idempotent(spark, tmp_path):
    for day in (MON, TUE):
        _write_staged(spark, tmp_path, "sales", _schema(SALES), [r for r in SALES_ROWS if r[3] == day], day)
        _write_staged(spark, tmp_path, "inventory", _schema(INVENTORY), [r for r in INVENTORY_ROWS if r[0] == day], day)
    first = build_weekly_fact.run(spark, lake=str(tmp_path), week_start=str(SUN), run_id="one")
    part = tmp_path / "curated" / "weekly_sales_inventory" / f"week_start={SUN}"
    read = lambda: duckdb.sql(  # noqa: E731
        f"SELECT * FROM read_parquet('{tmp_path}/curated/weekly_sales_inventory/*/*.parquet', hive_partitioning=true)"
        " ORDER BY store_key, prod_key").fetchall()
    rows_once = read()
    build_weekly_fact.run(spark, lake=str(tmp_path), week_start=str(SUN), run_id="two")
    assert read() == rows_once                                   # same rows, not duplicated
    assert first["row_count"] == len(rows_once) == 1             # pair (1, 10) only on Mon/Tue
    manifest = json.loads((part / "_manifest.json").read_text())
    assert manifest["row_count"] == 1 and manifest["run_id"] == "two"
    assert (part / "_SUCCESS").exists() and len(list(part.glob("*.parquet"))) == 1
    assert [s["dataset"] for s in manifest["sources"]] == [
        f"staged/sales/business_date={MON}", f"staged/sales/business_date={TUE}",
        f"staged/inventory/business_date={MON}", f"staged/inventory/business_date={TUE}",
    ]


def _staged_lake(spark, lake, sales_rows, inventory_rows):
    """Stage every day that has rows (a day's partition holds that day's rows only)."""
    days = sorted({r[3] for r in sales_rows} | {r[0] for r in inventory_rows})
    for day in days:
        _write_staged(spark, lake, "sales", _schema(SALES), [r for r in sales_rows if r[3] == day], day)
        _write_staged(spark, lake, "inventory", _schema(INVENTORY), [r for r in inventory_rows if r[0] == day], day)


def _published(lake):
    """Every published week: (week, rows sorted) and the manifest's counts and sources."""
    weeks = {}
    for part in sorted((lake / "curated" / "weekly_sales_inventory").glob("week_start=*")):
        rows = duckdb.sql(f"SELECT * FROM read_parquet('{part}/part-00000.parquet') ORDER BY store_key, prod_key").fetchall()
        manifest = json.loads((part / "_manifest.json").read_text())
        weeks[part.name] = {"rows": rows, "files": sorted(p.name for p in part.iterdir()),
                            **{k: manifest[k] for k in ("row_count", "sources", "totals", "week_start")}}
    return weeks


def test_two_weeks_in_one_call_publish_what_two_single_week_calls_do(spark, tmp_path):
    # SALES_ROWS spans the week of SUN and, with pair (3, 10)'s Sunday sale, the week of NEXT_SUN
    one, two = tmp_path / "one", tmp_path / "two"
    for lake in (one, two):
        _staged_lake(spark, lake, SALES_ROWS, INVENTORY_ROWS)
    singles = [build_weekly_fact.run(spark, lake=str(one), week_start=str(w), run_id="r") for w in (SUN, NEXT_SUN)]
    both = build_weekly_fact.run(spark, lake=str(two), week_starts=[str(SUN), str(NEXT_SUN)], run_id="r")
    assert [o["failure"] for o in both["outcomes"]] == [None, None]
    for single, outcome in zip(singles, both["outcomes"]):
        assert {**outcome["result"], "path": None} == {**single, "path": None}
    assert _published(two) == _published(one)
    assert sorted(_published(two)) == [f"week_start={SUN}", f"week_start={NEXT_SUN}"]
    assert [o["result"]["row_count"] for o in both["outcomes"]] == [6, 1]  # 6 pairs in the first week (see fact)
    assert _published(two)[f"week_start={SUN}"]["files"] == ["_SUCCESS", "_manifest.json", "part-00000.parquet"]


def test_the_checks_counts_come_with_the_write(spark, tmp_path, monkeypatch):
    _staged_lake(spark, tmp_path, SALES_ROWS, INVENTORY_ROWS)
    r = build_weekly_fact.run(spark, lake=str(tmp_path), week_start=str(SUN))
    assert (r["row_count"], r["distinct_keys"], r["rows_with_negative_measure"]) == (6, 6, 0)
    # totals over the week's six pairs: qty 2+1+2 + 1 + 4 + 0 + 1 = 11; amt 10+5+10 + 7 + 8 + 0 + 2 = 42
    assert r["totals"] == {"total_sales_qty": 11.0, "total_sales_amt": 42.0, "no_stock_instances": 2.0,
                           "low_stock_instances": 3.0, "no_stock_impact": 7.0}
    # the preview: the top rows by amount, ties by key: (1,10) 25, (2,10) 8, (1,11) 7, (3,10) 2, then 0s
    assert [(p["store_key"], p["prod_key"]) for p in r["preview"]] == [(1, 10), (2, 10), (1, 11), (3, 10), (1, 12), (2, 12)]
    assert r["preview"][0]["total_sales_amt"] == D("25.00") and "week_start" not in r["preview"][0]
    # read back in batches smaller than the week, the top rows are taken from several of them
    monkeypatch.setattr(build_weekly_fact, "READ_BACK_BATCH_ROWS", 4)
    assert build_weekly_fact._read_back(LakeFS(str(tmp_path)), build_weekly_fact.partition_path(str(SUN))) == \
        (r["distinct_keys"], r["preview"])


BIG = "900000000000000000000000000000000000.00"  # 9e35 fits decimal(38,2); twice it does not


def test_a_week_whose_sum_overflows_fails_in_one_line_and_keeps_its_partition(spark, tmp_path):
    _staged_lake(spark, tmp_path, [r for r in SALES_ROWS if r[3] == MON], [r for r in INVENTORY_ROWS if r[0] == MON])
    build_weekly_fact.run(spark, lake=str(tmp_path), week_start=str(SUN), run_id="before")
    part = tmp_path / "curated" / "weekly_sales_inventory" / f"week_start={SUN}"
    before = {p.name: p.read_bytes() for p in part.iterdir()}
    # two valid rows on Wednesday for pair (1, 10): their day's quantity does not fit
    _staged_lake(spark, tmp_path, [sale(20, WED, 1, 10, BIG, "1.00", "1.00"), sale(21, WED, 1, 10, BIG, "1.00", "1.00")], [])
    with pytest.raises(StepFailed) as failed:
        build_weekly_fact.run(spark, lake=str(tmp_path), week_start=str(SUN), run_id="after")
    message = str(failed.value)
    assert "\n" not in message
    assert message.startswith(f"week {SUN}: total_sales_qty of (store_key 1, prod_key 10) does not fit decimal(38,2)")
    assert {p.name: p.read_bytes() for p in part.iterdir()} == before          # the previous partition, untouched
    assert not [p for p in part.parent.iterdir() if p.name.startswith(".tmp-")]  # nothing left behind


def test_in_weeks_mode_an_overflowing_week_fails_alone(spark, tmp_path):
    third = NEXT_SUN + dt.timedelta(days=7)
    sales = [
        sale(1, MON, 1, 10, "2.00", "10.00", "6.00"),
        # week 2: each day's amount fits, the week's sum for pair (2, 12) does not
        sale(2, NEXT_SUN, 2, 12, "1.00", BIG, "1.00"),
        sale(3, NEXT_SUN + dt.timedelta(days=1), 2, 12, "1.00", BIG, "1.00"),
        sale(4, third, 3, 10, "1.00", "2.00", "1.00"),
    ]
    _staged_lake(spark, tmp_path, sales, [])
    out = build_weekly_fact.run(spark, lake=str(tmp_path), week_starts=[str(SUN), str(NEXT_SUN), str(third)])
    failures = [o["failure"] for o in out["outcomes"]]
    assert failures[0] is None and failures[2] is None
    assert failures[1].startswith(f"week {NEXT_SUN}: total_sales_amt of (store_key 2, prod_key 12) does not fit")
    assert "\n" not in failures[1] and out["outcomes"][1]["result"]["published"] is False
    assert sorted(_published(tmp_path)) == [f"week_start={SUN}", f"week_start={third}"]
    assert _published(tmp_path)[f"week_start={third}"]["rows"][0][3:6] == (D("1.00"), D("2.00"), D("1.00"))


def test_weeks_mode_reports_a_bad_week_and_builds_the_others(spark, tmp_path):
    _staged_lake(spark, tmp_path, SALES_ROWS[:1], [])
    out = build_weekly_fact.run(spark, lake=str(tmp_path), week_starts=[str(MON), str(SUN)])
    assert out["outcomes"][0]["failure"] == f"week_start {MON} is not a Sunday"
    assert out["outcomes"][1]["failure"] is None and out["outcomes"][1]["result"]["row_count"] == 1


def test_the_command_line_takes_several_weeks():
    import argparse

    parser = argparse.ArgumentParser()
    build_weekly_fact.add_arguments(parser)
    assert parser.parse_args(["--week-starts", '["2024-01-07", "2024-01-14"]']).week_starts == ["2024-01-07", "2024-01-14"]
    assert parser.parse_args(["--week-start", "2024-01-07"]).week_starts is None
