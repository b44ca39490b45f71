"""Synthetic raw landing zone (SPEC §1): five gzip CSV files per business day.

    from salespipe_assets.datagen import generate
    generate("/tmp/lake", datetime.date(2024, 1, 7), days=28, scale=0.01, seed=0)

Every file is a pure function of (seed, scale, table, day): the same arguments give
byte-identical files, and any day comes out the same whichever other days are generated
with it. See docs/generator.md for the realism model and sizes.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from tqdm import tqdm

from spark_steps.contract import CONTRACT, landing_name

from .calendar import calendar_table
from .csvio import csv_body, write_csv_gz
from .daily import build_day
from .dims import build_world, n_products, n_stores, target_sales_rows
from .stock import DemandCache

__all__ = ["generate", "n_stores", "n_products", "target_sales_rows"]


def _check_columns(table_name: str, table) -> None:
    expected = CONTRACT[table_name].column_names
    if table.column_names != expected:  # a programming error, never data dependent
        raise AssertionError(f"{table_name}: columns {table.column_names} != contract {expected}")


def generate(
    lake: str | Path,
    start: dt.date,
    days: int,
    scale: float = 0.01,
    seed: int = 0,
    progress: bool = True,
) -> dict:
    """Write `<lake>/raw/<table>_<YYYY-MM-DD>.csv.gz` for the 5 tables and each day in
    [start, start + days). Returns a report: files written, rows per table, seconds."""
    if days < 0:
        raise ValueError("days must be >= 0")
    if scale <= 0:
        raise ValueError("scale must be > 0")
    if seed < 0:
        raise ValueError("seed must be >= 0")
    if "://" in str(lake):
        raise ValueError(f"generate() writes to a local directory, not {lake!r}")
    t0 = time.perf_counter()
    raw = Path(lake) / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    world = build_world(int(seed), float(scale))
    cache = DemandCache(world)
    snapshot = {name: csv_body(getattr(world, name)) for name in ("store", "product")}
    snap_rows = {"store": world.store.num_rows, "product": world.product.num_rows}
    for name in ("store", "product"):
        _check_columns(name, getattr(world, name))

    files: list[str] = []
    rows = {t: 0 for t in CONTRACT}
    nbytes = 0
    for i in tqdm(range(days), desc="datagen", unit="day", disable=not progress):
        day = start + dt.timedelta(days=i)
        sales, inventory = build_day(world, day.toordinal(), cache)
        cal = calendar_table(day.year)
        bodies = {
            "sales": (csv_body(sales), sales.num_rows),
            "inventory": (csv_body(inventory), inventory.num_rows),
            "store": (snapshot["store"], snap_rows["store"]),
            "product": (snapshot["product"], snap_rows["product"]),
            "calendar": (csv_body(cal), cal.num_rows),
        }
        for name, table in (("sales", sales), ("inventory", inventory), ("calendar", cal)):
            _check_columns(name, table)
        for name, (body, n) in bodies.items():
            path = raw / landing_name(name, day.isoformat())
            nbytes += write_csv_gz(path, CONTRACT[name].header, body)
            files.append(str(path))
            rows[name] += n
    return {
        "lake": str(lake),
        "start": start.isoformat(),
        "days": days,
        "scale": scale,
        "seed": seed,
        "stores": snap_rows["store"],
        "products": snap_rows["product"],
        "files": files,
        "rows": rows,
        "bytes": nbytes,
        "seconds": round(time.perf_counter() - t0, 3),
    }
