"""The data contract of SPEC.md §1–§2, as data.

Shared by the generator, the Spark steps and the Dagster code, so the column lists,
types and row rules live in exactly one place. Pure Python: no Spark or Dagster import.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

DAILY_TABLES = ("sales", "inventory")  # daily increments: rows of that business day only
SNAPSHOT_TABLES = ("store", "product", "calendar")  # full snapshots, re-sent every day
TABLES = DAILY_TABLES + SNAPSHOT_TABLES

# <table>_<YYYY-MM-DD>.csv.gz or .csv. The date part is checked separately so that a
# name with a non-date ("sales_2024-02-30.csv") is recognised and quarantined. \Z, not $:
# "$" would also match before a trailing newline.
LANDING_NAME = re.compile(
    r"^(?P<table>" + "|".join(TABLES) + r")_(?P<date>\d{4}-\d{2}-\d{2})\.csv(?P<gz>\.gz)?\Z"
)
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only


def checked_date(value: str, what: str = "partition key") -> str:
    """``value`` if it is a real date written YYYY-MM-DD, else ValueError. Partition keys and
    business dates become lake paths, S3 keys, SQL and catalog entries: nothing else may."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise ValueError(f"{what} must be a YYYY-MM-DD date, not {value!r}")
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{what} {value!r} is not a real date") from None
    return value


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # "bigint" | "int" | "date" | "boolean" | "string" | "decimal(p,s)"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    required: tuple[str, ...] = ()
    non_negative: tuple[str, ...] = ()
    flag_01: tuple[str, ...] = ()  # int columns that must be 0 or 1
    business_date_column: str | None = None  # must equal the file's date
    unique_key: tuple[str, ...] = ()  # first in file order kept, repeats rejected
    daily: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def header(self) -> str:
        return ",".join(self.column_names)


def _cols(spec: str) -> tuple[Column, ...]:
    out = []
    for part in spec.split(","):
        name, typ = part.split(":")
        out.append(Column(name.strip(), typ.strip().replace(";", ",")))
    return tuple(out)


D2 = "decimal(38;2)"

SALES = Table(
    "sales",
    _cols(
        f"trans_id:bigint, prod_key:int, store_key:int, trans_dt:date, trans_time:int,"
        f" sales_qty:{D2}, sales_price:{D2}, sales_amt:{D2}, discount:{D2},"
        f" sales_cost:{D2}, sales_mgrn:{D2}, ship_cost:{D2}"
    ),
    required=("trans_id", "prod_key", "store_key", "trans_dt", "sales_qty", "sales_amt", "sales_cost"),
    non_negative=("sales_qty", "sales_amt", "sales_cost"),
    business_date_column="trans_dt",
    unique_key=("trans_id",),
    daily=True,
)

INVENTORY = Table(
    "inventory",
    _cols(
        f"cal_dt:date, store_key:int, prod_key:int, inventory_on_hand_qty:{D2},"
        f" inventory_on_order_qty:{D2}, out_of_stock_flg:int, waste_qty:{D2},"
        f" promotion_flg:boolean, next_delivery_dt:date"
    ),
    required=(
        "cal_dt", "store_key", "prod_key", "inventory_on_hand_qty",
        "inventory_on_order_qty", "out_of_stock_flg",
    ),
    non_negative=("inventory_on_hand_qty", "inventory_on_order_qty"),
    flag_01=("out_of_stock_flg",),
    business_date_column="cal_dt",
    unique_key=("cal_dt", "store_key", "prod_key"),
    daily=True,
)

# SPEC §2 names required columns only for the daily tables. For snapshots we decided
# (README, "Decisions") that the key must be present and unique, so that joins on the
# curated dimensions never fan out.
STORE = Table(
    "store",
    _cols(
        "store_key:int, store_num:string, store_desc:string, addr:string, city:string,"
        " region:string, cntry_cd:string, cntry_nm:string, postal_zip_cd:string,"
        " prov_state_desc:string, prov_state_cd:string, store_type_cd:string,"
        " store_type_desc:string, frnchs_flg:boolean, store_size:decimal(19;3),"
        " market_key:int, market_name:string, submarket_key:int, submarket_name:string,"
        " latitude:decimal(19;6), longitude:decimal(19;6)"
    ),
    required=("store_key",),
    unique_key=("store_key",),
)

PRODUCT = Table(
    "product",
    _cols(
        f"prod_key:int, prod_name:string, vol:{D2}, wgt:{D2}, brand_name:string,"
        " status_code:int, status_code_name:string, category_key:int, category_name:string,"
        " subcategory_key:int, subcategory_name:string"
    ),
    required=("prod_key",),
    unique_key=("prod_key",),
)

CALENDAR = Table(
    "calendar",
    _cols(
        "cal_dt:date, cal_type_desc:string, day_of_wk_num:int, day_of_wk_desc:string,"
        " yr_num:int, wk_num:int, yr_wk_num:int, mnth_num:int, yr_mnth_num:int,"
        " qtr_num:int, yr_qtr_num:int"
    ),
    required=("cal_dt",),
    unique_key=("cal_dt",),
)

CONTRACT: dict[str, Table] = {t.name: t for t in (SALES, INVENTORY, STORE, PRODUCT, CALENDAR)}

# Reject reasons: stable codes (used for counts by reason) with a human message.
REASON_FILE_DATE = "business_date_mismatch"
REASON_DUPLICATE = "duplicate_key"
REASON_FIELD_COUNT = "wrong_field_count"
REASON_NEGATIVE = "negative_value"
REASON_REQUIRED = "required_null"
REASON_TYPE = "unparseable_value"
REASON_FLAG = "flag_not_0_1"
REASON_UNBALANCED_QUOTE = "unbalanced_quote"  # a quoted value never closed: no row from it


def landing_name(table: str, day: str, gz: bool = True) -> str:
    return f"{table}_{day}.csv{'.gz' if gz else ''}"
