"""One business day's sales lines and inventory rows, as Arrow tables in contract order."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from . import refdata as R
from .arrowutil import date_array, decimal_array
from .demand import promo
from .dims import World
from .rng import LINES, day_rng
from .stock import DemandCache, day_stock

TRANS_ID_DAY = 10**9  # trans_id = day ordinal * 10**9 + row number within the day
COUPON_SHARE = 0.04  # non-promotion lines with a coupon discount
SHIP_COST_NULL_SHARE = 0.005  # ship cost not captured
_HOURS = np.array(R.HOURLY_WEIGHT) / np.sum(R.HOURLY_WEIGHT)
_ONLINE = [i for i, t in enumerate(R.STORE_TYPES) if t[0] == "ONL"][0]


def _d2(v, null=None) -> pa.Array:
    return decimal_array(v, 38, 2, null)


def build_day(world: World, ordinal: int, cache: DemandCache) -> tuple[pa.Table, pa.Table]:
    stock = day_stock(world, ordinal, cache)
    dem = cache.get(ordinal)
    on_promo, _, promo_pct = promo(world, ordinal)
    rng = day_rng(world.seed, ordinal, LINES)
    n_lines = len(dem.line_pair)

    # Per-line draws for every demand line (fixed stream use), cut to stock afterwards.
    hour = rng.choice(24, size=n_lines, p=_HOURS)
    t = hour * 3600 + rng.integers(0, 3600, n_lines)
    coupon = rng.random(n_lines) < COUPON_SHARE
    coupon_pct = 0.05 + 0.15 * rng.random(n_lines)
    ship_c = rng.integers(99, 800, n_lines)
    ship_null = rng.random(n_lines) < SHIP_COST_NULL_SHARE

    # Within each pair, lines in time order; once the opening stock is sold out the
    # remaining demand is lost (the last line gets what is left).
    order = np.argsort(dem.line_pair * 86400 + t, kind="stable")
    lp = dem.line_pair[order]
    qty = dem.line_qty_h[order]
    cum_excl = np.cumsum(qty) - qty
    first = np.cumsum(dem.lines) - dem.lines  # index of each pair's first line
    base = np.zeros(world.n_pairs, dtype=np.int64)
    has = dem.lines > 0
    base[has] = cum_excl[first[has]]
    before = cum_excl - base[lp]
    room = stock.opening_h[lp] - before
    keep = room > 0
    order, lp, qty = order[keep], lp[keep], np.minimum(qty, room)[keep]

    # File order: by time of day, then pair.
    o2 = np.argsort(t[order] * np.int64(world.n_pairs) + lp, kind="stable")
    order, lp, qty = order[o2], lp[o2], qty[o2]
    n = len(order)
    if n >= TRANS_ID_DAY:  # trans_id = day ordinal * TRANS_ID_DAY + row: rows must fit the day's range
        raise ValueError(f"{n} sales rows in one day do not fit trans_id's per-day range ({TRANS_ID_DAY}); "
                         "use a smaller scale")

    price = world.price_c[lp]
    gross = (qty * price + 50) // 100
    pct = np.where(on_promo[lp], promo_pct[lp], np.where(coupon[order], coupon_pct[order], 0.0))
    discount = np.round(gross * pct).astype(np.int64)
    amt = gross - discount
    cost = (qty * world.cost_c[lp] + 50) // 100
    online = world.store_type[world.pair_store[lp]] == _ONLINE
    ship = np.where(online, ship_c[order], 0)

    sales = pa.table({
        "trans_id": pa.array(ordinal * TRANS_ID_DAY + np.arange(n, dtype=np.int64), pa.int64()),
        "prod_key": pa.array(world.prod_key[world.pair_prod[lp]], pa.int32()),
        "store_key": pa.array(world.store_key[world.pair_store[lp]], pa.int32()),
        "trans_dt": date_array(np.full(n, ordinal)),
        "trans_time": pa.array(t[order], pa.int32()),
        "sales_qty": _d2(qty),
        "sales_price": _d2(price),
        "sales_amt": _d2(amt),
        "discount": _d2(discount),
        "sales_cost": _d2(cost),
        "sales_mgrn": _d2(amt - cost),
        "ship_cost": _d2(ship, null=ship_null[order]),
    })

    m = world.n_pairs
    inventory = pa.table({
        "cal_dt": date_array(np.full(m, ordinal)),
        "store_key": pa.array(world.store_key[world.pair_store], pa.int32()),
        "prod_key": pa.array(world.prod_key[world.pair_prod], pa.int32()),
        "inventory_on_hand_qty": _d2(stock.on_hand_h),
        "inventory_on_order_qty": _d2(stock.on_order_h),
        "out_of_stock_flg": pa.array((stock.on_hand_h == 0).astype(np.int32), pa.int32()),
        "waste_qty": _d2(stock.waste_h),
        "promotion_flg": pa.array(on_promo),
        "next_delivery_dt": date_array(stock.next_delivery),
    })
    return sales, inventory
