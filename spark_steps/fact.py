"""SPEC §3: the weekly sales-inventory fact from accepted (staged) sales and inventory rows."""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

D38_2 = "decimal(38,2)"
KEYS = ["week_start", "store_key", "prod_key"]
# Column order and SQL types of the fact (SPEC §3); Spark, DuckDB and the warehouse DDL share them.
FACT_SCHEMA = [
    ("week_start", "date"), ("week_end", "date"), ("store_key", "int"), ("prod_key", "int"),
    ("total_sales_qty", D38_2), ("total_sales_amt", D38_2), ("total_sales_cost", D38_2),
    ("avg_sales_price", "double"),
    ("eow_stock_on_hand_qty", D38_2), ("eow_stock_on_order_qty", D38_2),
    ("no_stock_instances", "int"), ("low_stock_instances", "int"), ("total_low_stock_impact", "int"),
    ("in_stock_pct", "double"), ("potential_low_stock_impact", "double"),
    ("no_stock_impact", D38_2), ("weeks_of_supply", "double"),
]
FACT_COLUMNS = [name for name, _ in FACT_SCHEMA]
NON_NEGATIVE_MEASURES = [
    "total_sales_qty", "total_sales_amt", "total_sales_cost", "eow_stock_on_hand_qty",
    "eow_stock_on_order_qty", "no_stock_instances", "low_stock_instances",
    "total_low_stock_impact", "potential_low_stock_impact", "no_stock_impact",
]


DAY_MEASURES = ["day_qty", "day_amt", "day_cost"]
# The fact's decimal sums and the day sums they add up; a week's ``_overflow`` column
# names the first of them that does not fit decimal(38,2).
SUMMED = {"total_sales_qty": "day_qty", "total_sales_amt": "day_amt", "total_sales_cost": "day_cost"}
OVERFLOW = "_overflow"


def week_start_of(day) -> F.Column:
    """The Sunday on or before ``day`` (Spark's dayofweek: 1 = Sunday ... 7 = Saturday)."""
    return F.date_sub(day, F.dayofweek(day) - 1)


def _checked_sum(column: str | Column, name: str) -> list[F.Column]:
    """A decimal sum that does not fail the job when it overflows decimal(38,2): ``name``
    is null then, and ``name_overflow`` says so (a sum of no values is null too, but not
    an overflow). ANSI ``sum`` would fail the whole job with an error naming nothing."""
    return [F.try_sum(column).alias(name), (F.try_sum(column).isNull() & (F.count(column) > 0)).alias(f"{name}_overflow")]


def daily_pairs(sales: DataFrame, inventory: DataFrame) -> DataFrame:
    """One row per day and (store_key, prod_key) with any accepted sales or inventory row."""
    day_sales = sales.groupBy(
        F.col("trans_dt").alias("day"), "store_key", "prod_key"
    ).agg(
        *_checked_sum("sales_qty", "day_qty"),
        *_checked_sum("sales_amt", "day_amt"),
        *_checked_sum("sales_cost", "day_cost"),
    )
    day_inventory = inventory.select(
        F.col("cal_dt").alias("day"), "store_key", "prod_key",
        F.col("inventory_on_hand_qty").alias("on_hand"),
        F.col("inventory_on_order_qty").alias("on_order"),
        "out_of_stock_flg",
        F.lit(True).alias("has_inventory"),
    )
    zero = F.lit(0).cast(D38_2)
    day = day_sales.join(day_inventory, ["day", "store_key", "prod_key"], "full_outer").select(
        "day", "store_key", "prod_key",
        *[F.coalesce(m, zero).cast(D38_2).alias(m) for m in DAY_MEASURES],
        *[F.coalesce(f"{m}_overflow", F.lit(False)).alias(f"{m}_overflow") for m in DAY_MEASURES],
        "on_hand", "on_order", "out_of_stock_flg",
        F.coalesce("has_inventory", F.lit(False)).alias("has_inventory"),
    )
    low_stock = F.col("has_inventory") & (F.col("on_hand") < F.col("day_qty"))
    return day.withColumn("low_stock_flg", F.when(low_stock, 1).otherwise(0)).withColumn(
        "week_start", week_start_of(F.col("day"))
    )


def weekly_fact(sales: DataFrame, inventory: DataFrame) -> DataFrame:
    """The fact for every week present in the inputs, columns in SPEC order."""
    return weekly_fact_checked(sales, inventory).drop(OVERFLOW)


def weekly_fact_checked(sales: DataFrame, inventory: DataFrame) -> DataFrame:
    """``weekly_fact`` with one more column, ``_overflow``: null, or the name of the first
    decimal measure whose sum does not fit decimal(38,2) for that week and pair (the
    measure itself is null then). One aggregation over the days; nothing fails the job."""
    day = daily_pairs(sales, inventory)

    # End-of-week stock: the week's inventory row with the latest cal_dt, found in the same
    # aggregation (max_by ignores the days without an inventory row: their ordering is null).
    inventory_day = F.when(F.col("has_inventory"), F.col("day"))

    low_day_impact = F.when(
        F.col("low_stock_flg") == 1,
        F.col("day_amt").cast("double")
        * (F.lit(1.0) - F.col("on_hand").cast("double") / F.col("day_qty").cast("double")),
    )
    no_stock_day_amt = F.when(F.col("out_of_stock_flg") == 1, F.col("day_amt"))
    weekly = day.groupBy(*KEYS).agg(
        *[c for total, daily in SUMMED.items() for c in (
            F.try_sum(daily).alias(total),
            # a day that overflowed, or the week's sum of fitting days (every day has a value)
            (F.max(f"{daily}_overflow") | F.try_sum(daily).isNull()).alias(f"{total}_overflow"))],
        *_checked_sum(no_stock_day_amt, "no_stock_impact"),
        F.coalesce(F.sum("out_of_stock_flg"), F.lit(0)).cast("int").alias("no_stock_instances"),
        F.sum("low_stock_flg").cast("int").alias("low_stock_instances"),
        F.max(F.col("has_inventory").cast("int")).alias("_has_inventory"),
        F.coalesce(F.sum(low_day_impact), F.lit(0.0)).alias("potential_low_stock_impact"),
        F.max_by("on_hand", inventory_day).alias("eow_on_hand"),
        F.max_by("on_order", inventory_day).alias("eow_on_order"),
    )
    overflow = F.coalesce(*[F.when(F.col(f"{m}_overflow"), F.lit(m)) for m in [*SUMMED, "no_stock_impact"]])

    qty = F.col("total_sales_qty").cast("double")
    return weekly.select(
        "week_start",
        F.date_add("week_start", 6).alias("week_end"),
        F.col("store_key").cast("int"),
        F.col("prod_key").cast("int"),
        *[F.col(m).cast(D38_2).alias(m) for m in SUMMED],
        F.when(qty != 0, F.col("total_sales_amt").cast("double") / qty).alias("avg_sales_price"),
        F.col("eow_on_hand").cast(D38_2).alias("eow_stock_on_hand_qty"),
        F.col("eow_on_order").cast(D38_2).alias("eow_stock_on_order_qty"),
        "no_stock_instances",
        "low_stock_instances",
        (F.col("low_stock_instances") + F.col("no_stock_instances")).cast("int").alias("total_low_stock_impact"),
        F.when(F.col("_has_inventory") == 1, (F.lit(7) - F.col("no_stock_instances")) / F.lit(7.0))
        .alias("in_stock_pct"),
        F.col("potential_low_stock_impact").cast("double"),
        F.coalesce("no_stock_impact", F.lit(0).cast(D38_2)).cast(D38_2).alias("no_stock_impact"),
        F.when(qty != 0, F.col("eow_on_hand").cast("double") / qty).alias("weeks_of_supply"),
        overflow.alias(OVERFLOW),
    )
