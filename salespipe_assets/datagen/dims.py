"""The static world: stores, products and the assortment (stocked store-product pairs).

Depends on (seed, scale) only, never on the day, so the store and product snapshots are
identical in every daily file. Sizes grow with sqrt(scale) so that pairs, and hence sales
rows, grow linearly with scale.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import refdata as R
from .arrowutil import decimal_array, join_str, str_of
from .rng import dim_rng

SALES_ROWS_AT_SCALE_1 = 1_000_000
MIN_SALES_ROWS = 2_000
# Expected lines differ from rows written: promotions and the December peak lift demand,
# stock-outs cut it. Measured correction so that rows/day ~ 1e6 * scale averaged over a year.
_DEMAND_CORRECTION = 1.066


def n_stores(scale: float) -> int:
    return max(6, round(150 * math.sqrt(scale)))


def n_products(scale: float) -> int:
    return max(60, round(1500 * math.sqrt(scale)))


def target_sales_rows(scale: float) -> int:
    return max(MIN_SALES_ROWS, round(SALES_ROWS_AT_SCALE_1 * scale))


@dataclass(frozen=True)
class World:
    seed: int
    scale: float
    store: pa.Table
    product: pa.Table
    # per store
    store_key: np.ndarray
    store_type: np.ndarray  # index into R.STORE_TYPES
    # per product
    prod_key: np.ndarray
    category: np.ndarray  # index into R.CATEGORIES
    weighed: np.ndarray  # bool: sold by weight (fractional quantities)
    perishable: np.ndarray
    geom_p: np.ndarray  # whole units per line ~ Geometric(geom_p)
    kg_median: np.ndarray  # weighed: kg per line ~ LogNormal(log(kg_median), KG_SIGMA)
    # per pair (sorted by store, then product)
    pair_store: np.ndarray  # index into stores
    pair_prod: np.ndarray  # index into products
    base_lines: np.ndarray  # expected sales lines per day before day factors
    mean_qty_h: np.ndarray  # expected quantity per line, hundredths
    price_c: np.ndarray  # shelf price, cents
    cost_c: np.ndarray  # unit cost, cents
    period: np.ndarray  # days between deliveries
    phase: np.ndarray  # delivery cycle offset, 0..period-1
    min_stock_h: np.ndarray  # minimum order-up-to level (shelf facing), hundredths

    @property
    def n_pairs(self) -> int:
        return len(self.pair_store)


KG_SIGMA = 0.45


def _pick(rng: np.random.Generator, n: int, weights) -> np.ndarray:
    w = np.asarray(weights, dtype=float)
    return rng.choice(len(w), size=n, p=w / w.sum())


def _stores(rng: np.random.Generator, n: int):
    types = _pick(rng, n, [t[2] for t in R.STORE_TYPES])
    city = _pick(rng, n, R.CITY_WEIGHT)
    c = lambda i: np.array([row[i] for row in R.CITIES], dtype=object)[city]  # noqa: E731
    key = np.arange(1001, 1001 + n)
    t = lambda i: np.array([row[i] for row in R.STORE_TYPES], dtype=object)[types]  # noqa: E731
    lo = np.array([r[3][0] for r in R.STORE_TYPES])[types]
    hi = np.array([r[3][1] for r in R.STORE_TYPES])[types]
    size_milli = np.round((lo + (hi - lo) * rng.random(n)) * 4) * 250  # quarter sq ft
    franchise = rng.random(n) < np.array([r[6] for r in R.STORE_TYPES])[types]
    lat = np.round((c(6).astype(float) + rng.normal(0, 0.06, n)) * 1e6).astype(np.int64)
    lon = np.round((c(7).astype(float) + rng.normal(0, 0.08, n)) * 1e6).astype(np.int64)
    markets = sorted({row[5] for row in R.CITIES}, key=[row[5] for row in R.CITIES].index)
    market_key = np.array([markets.index(row[5]) + 1 for row in R.CITIES])[city]
    street_no = rng.integers(10, 9900, n)
    street = np.array(R.STREETS, dtype=object)[rng.integers(0, len(R.STREETS), n)]
    unit = rng.integers(1, 40, n)
    has_unit = rng.random(n) < 0.15  # "120 King St W, Unit 4": needs CSV quoting
    us = c(3) == "US"
    zip_tail = rng.integers(0, 100, n)
    ca_tail = rng.integers(0, 10, n)
    ca_letter = np.array(list("ABCEGHJKLMNPRSTVWXYZ"), dtype=object)[rng.integers(0, 20, n)]
    ca_tail2 = rng.integers(0, 10, n)
    # number of the store within its banner and city: rank among equal (type, city)
    grp = types * 1000 + city
    order = np.lexsort((key, grp))
    first = np.searchsorted(grp[order], grp[order], side="left")
    num_in_city = np.empty(n, dtype=np.int64)
    num_in_city[order] = np.arange(n) - first + 1

    addr = join_str(str_of(street_no), " ", street)
    addr = pc.if_else(pa.array(has_unit), join_str(addr, ", Unit ", str_of(unit)), addr)
    postal = pc.if_else(
        pa.array(us),
        join_str(c(8), pc.utf8_lpad(str_of(zip_tail), 2, "0")),
        join_str(c(8), " ", str_of(ca_tail), ca_letter, str_of(ca_tail2)),
    )
    banner = np.array([R.STORE_BANNERS[r[0]] for r in R.STORE_TYPES], dtype=object)[types]
    table = pa.table({
        "store_key": pa.array(key, pa.int32()),
        "store_num": join_str("ST", pc.utf8_lpad(str_of(key), 5, "0")),
        "store_desc": join_str(banner, " ", c(0), " #", str_of(num_in_city)),
        "addr": addr,
        "city": pa.array(c(0), pa.string()),
        "region": pa.array(c(4), pa.string()),
        "cntry_cd": pa.array(c(3), pa.string()),
        "cntry_nm": pa.array(np.where(us, R.COUNTRY_NAME["US"], R.COUNTRY_NAME["CA"]), pa.string()),
        "postal_zip_cd": postal,
        "prov_state_desc": pa.array(c(2), pa.string()),
        "prov_state_cd": pa.array(c(1), pa.string()),
        "store_type_cd": pa.array(t(0), pa.string()),
        "store_type_desc": pa.array(t(1), pa.string()),
        "frnchs_flg": pa.array(franchise),
        "store_size": decimal_array(size_milli.astype(np.int64), 19, 3),
        "market_key": pa.array(market_key, pa.int32()),
        "market_name": pa.array(c(5), pa.string()),
        "submarket_key": pa.array(100 + city, pa.int32()),
        "submarket_name": pa.array(c(0), pa.string()),
        "latitude": decimal_array(lat, 19, 6),
        "longitude": decimal_array(lon, 19, 6),
    })
    traffic = np.array([r[4] for r in R.STORE_TYPES])[types] * rng.lognormal(0, 0.3, n)
    price_index = 1.0 + rng.normal(0, 0.03, n) + np.where(us, 0.0, 0.04)
    return table, key, types, traffic, price_index


def _products(rng: np.random.Generator, n: int):
    cat = _pick(rng, n, R.CATEGORY_WEIGHT)
    C = R.CATEGORIES
    n_sub = np.array([len(x[1]) for x in C])[cat]
    sub_i = (rng.random(n) * n_sub).astype(np.int64)
    sub_off = np.cumsum([0] + [len(x[1]) for x in C])[:-1]
    sub_names = np.array([s for x in C for s in x[1]], dtype=object)
    subcat = sub_off[cat] + sub_i  # global subcategory index
    n_brand = np.array([len(x[2]) for x in C])[cat]
    brand_off = np.cumsum([0] + [len(x[2]) for x in C])[:-1]
    brands = np.array([b for x in C for b in x[2]], dtype=object)[brand_off[cat] + (rng.random(n) * n_brand).astype(np.int64)]
    variant = np.array(R.VARIANTS, dtype=object)[rng.integers(0, len(R.VARIANTS), n)]
    weighed = rng.random(n) < np.array([x[5] for x in C])[cat]
    perishable = np.array([x[6] for x in C])[cat]
    status = _pick(rng, n, [s[2] for s in R.STATUSES])
    key = np.arange(100001, 100001 + n)

    vol_lo = np.array([x[10][0] if x[10] else np.nan for x in C])[cat]
    vol_hi = np.array([x[10][1] if x[10] else np.nan for x in C])[cat]
    liquid = np.isin(sub_names[subcat], list(R.LIQUID_SUBCATEGORIES))
    vol_lo = np.where(liquid, vol_lo, np.nan)
    vol_h = np.round((vol_lo + (vol_hi - vol_lo) * rng.random(n)) * 4) * 25  # quarter litres
    # package weight in kg (hundredths): liquids ~ 1 kg/l plus packaging
    wgt_h = np.round(rng.lognormal(np.log(0.6), 0.7, n) * 100).clip(5, 2500)
    wgt_h = np.where(np.isnan(vol_h), wgt_h, np.round(np.nan_to_num(vol_h) * (1.02 + 0.08 * rng.random(n)) + 3))
    pack = pc.if_else(
        pa.array(np.isnan(vol_h)),
        join_str(str_of(wgt_h.astype(np.int64) * 10), " g"),
        join_str(str_of(np.nan_to_num(vol_h).astype(np.int64) * 10), " ml"),
    )
    # A few names need CSV quoting: "..., per kg" and pizza sizes in inches (12").
    pizza = sub_names[subcat] == "Pizza"
    size = pc.if_else(pa.array(pizza), join_str(str_of(rng.choice([10, 12, 14], n)), '"'), pack)
    size = pc.if_else(pa.array(weighed), pa.scalar(", per kg"), join_str(" ", size))
    name = join_str(brands, " ", sub_names[subcat], " ", variant, size)

    table = pa.table({
        "prod_key": pa.array(key, pa.int32()),
        "prod_name": name,
        "vol": decimal_array(np.nan_to_num(vol_h).astype(np.int64), 38, 2, null=np.isnan(vol_h)),
        "wgt": decimal_array(wgt_h.astype(np.int64), 38, 2, null=weighed),
        "brand_name": pa.array(brands, pa.string()),
        "status_code": pa.array(np.array([s[0] for s in R.STATUSES])[status], pa.int32()),
        "status_code_name": pa.array(np.array([s[1] for s in R.STATUSES], dtype=object)[status], pa.string()),
        "category_key": pa.array(cat + 1, pa.int32()),
        "category_name": pa.array(np.array([x[0] for x in C], dtype=object)[cat], pa.string()),
        "subcategory_key": pa.array(100 + subcat, pa.int32()),
        "subcategory_name": pa.array(sub_names[subcat], pa.string()),
    })
    lo = np.array([x[3][0] for x in C])[cat]
    hi = np.array([x[3][1] for x in C])[cat]
    price = np.exp(np.log(lo) + (np.log(hi) - np.log(lo)) * rng.random(n))
    cost_ratio = np.array([x[4][0] for x in C])[cat] + rng.random(n) * (
        np.array([x[4][1] for x in C])[cat] - np.array([x[4][0] for x in C])[cat])
    popularity = rng.lognormal(0, 1.0, n) * np.array([s[3] for s in R.STATUSES])[status]
    geom_p = 0.55 + 0.4 * rng.random(n)
    kg_median = 0.25 + 0.9 * rng.random(n)
    return table, key, cat, weighed, perishable, status, price, cost_ratio, popularity, geom_p, kg_median


@functools.lru_cache(maxsize=4)
def build_world(seed: int, scale: float) -> World:
    rng = dim_rng(seed)
    store, skey, stype, traffic, price_index = _stores(rng, n_stores(scale))
    (product, pkey, cat, weighed, perishable, status, price, cost_ratio, popularity,
     geom_p, kg_median) = _products(rng, n_products(scale))
    ns, npr = len(skey), len(pkey)

    # Assortment: the store type sets the share of the range stocked; popular products
    # are more likely to be stocked, discontinued ones less.
    pop_pct = np.argsort(np.argsort(popularity)) / max(1, npr - 1)
    share = np.array([t[5] for t in R.STORE_TYPES])[stype]
    p_stock = np.clip(share[:, None] * (0.75 + 0.5 * pop_pct[None, :]), 0, 1)
    p_stock = p_stock * np.where(status == 3, 0.6, 1.0)[None, :]
    stocked = rng.random((ns, npr)) < p_stock
    pair_store, pair_prod = np.nonzero(stocked)  # row-major: sorted by store, product
    n_pairs = len(pair_store)

    raw = popularity[pair_prod] * traffic[pair_store]
    mean_qty_h = np.where(weighed[pair_prod], 100 * kg_median[pair_prod] * math.exp(KG_SIGMA**2 / 2),
                          100 / geom_p[pair_prod])
    k = target_sales_rows(scale) / raw.sum() / _DEMAND_CORRECTION
    base_lines = raw * k

    p_c = price[pair_prod] * price_index[pair_store] * 100
    price_c = (np.floor(p_c / 10) * 10 + 9).astype(np.int64)  # prices end in 9
    price_c = np.maximum(price_c, 19)
    cost_c = np.round(price[pair_prod] * 100 * cost_ratio[pair_prod]).astype(np.int64)

    # Replenishment: perishables every 1-3 days, the rest every 3, 4 or 7 days.
    per = perishable[pair_prod]
    period = np.where(per, rng.choice([1, 2, 3], n_pairs, p=[0.3, 0.4, 0.3]),
                      rng.choice([3, 4, 7], n_pairs, p=[0.3, 0.3, 0.4]))
    phase = (rng.random(n_pairs) * period).astype(np.int64)
    min_stock_h = np.where(weighed[pair_prod], rng.integers(1, 5, n_pairs) * 100,
                           rng.integers(2, 7, n_pairs) * 100)
    return World(
        seed=seed, scale=scale, store=store, product=product,
        store_key=skey, store_type=stype, prod_key=pkey, category=cat, weighed=weighed,
        perishable=perishable, geom_p=geom_p, kg_median=kg_median,
        pair_store=pair_store, pair_prod=pair_prod, base_lines=base_lines,
        mean_qty_h=mean_qty_h, price_c=price_c, cost_c=cost_c, period=period.astype(np.int64),
        phase=phase, min_stock_h=min_stock_h.astype(np.int64),
    )
