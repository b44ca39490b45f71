"""The demand model: how many sales lines a stocked pair would see on a day, and how much.

expected lines(pair, day) = base(pair)                      popularity x store traffic
                            x weekday(day)                  busy Fri/Sat/Sun
                            x season(category, day of year) yearly wave + December peak
                            x trend(day)                    +2 % a year
                            x promo lift(pair, week)        1.5-2.5 x in a promotion week
The realised day is drawn from the day's own RNG: lines ~ Poisson(expected), quantity per
line ~ Geometric (whole units) or LogNormal kg rounded to 0.01 (weighed products).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from . import refdata as R
from .dims import KG_SIGMA, World
from .rng import DEMAND, day_rng, hash_u01

# hash streams for week-level promotion decisions
_PROMO, _OPTOUT, _LIFT, _PCT = 11, 12, 13, 14
PROMO_SHARE = 0.07  # share of product-weeks on promotion (chain-wide)
OPTOUT_SHARE = 0.15  # stores not taking part in a given promotion
PROMO_PCTS = np.array([0.10, 0.15, 0.20, 0.25, 0.30, 0.40])

WASTE_PROB = 0.10  # perishable pair-days with some waste

_WEEKDAY = np.array(R.WEEKDAY_WEIGHT) / np.mean(R.WEEKDAY_WEIGHT)
_SEASON_AMP = np.array([c[7] for c in R.CATEGORIES])
_SEASON_PEAK = np.array([c[8] for c in R.CATEGORIES])
_HOLIDAY = np.array([c[9] for c in R.CATEGORIES])
_TREND_BASE = dt.date(2024, 1, 1).toordinal()


def day_of_year(ordinals: np.ndarray) -> np.ndarray:
    d64 = (np.asarray(ordinals, dtype=np.int64) - 719163).astype("datetime64[D]")
    return (d64 - d64.astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1


def promo(world: World, days) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(on promotion, demand lift, discount fraction) per pair for `days` (scalar or per-pair array).

    A promotion is decided per product and Sunday-Saturday week for the whole chain; a few
    stores opt out of each one.
    """
    week = np.asarray(days, dtype=np.int64) // 7
    pk = world.prod_key[world.pair_prod]
    sk = world.store_key[world.pair_store]
    on = (hash_u01(world.seed, _PROMO, pk, week) < PROMO_SHARE) & (
        hash_u01(world.seed, _OPTOUT, sk, pk, week) >= OPTOUT_SHARE)
    lift = np.where(on, 1.5 + hash_u01(world.seed, _LIFT, pk, week), 1.0)
    pct = PROMO_PCTS[(hash_u01(world.seed, _PCT, pk, week) * len(PROMO_PCTS)).astype(np.int64)]
    return on, lift, np.where(on, pct, 0.0)


def expected_lines(world: World, days) -> np.ndarray:
    """Expected sales lines per pair on `days` (a scalar ordinal or one ordinal per pair)."""
    days = np.asarray(days, dtype=np.int64)
    cat = world.category[world.pair_prod]
    doy = day_of_year(days)
    season = (1 + _SEASON_AMP[cat] * np.cos(2 * np.pi * (doy - _SEASON_PEAK[cat]) / 365.25)
              + _HOLIDAY[cat] * np.exp(-(((doy - 356) / 9.0) ** 2)))
    trend = 1.02 ** ((days - _TREND_BASE) / 365.25)
    _, lift, _ = promo(world, days)
    return world.base_lines * _WEEKDAY[days % 7] * season * trend * lift


def expected_waste_h(world: World) -> np.ndarray:
    per = world.perishable[world.pair_prod]
    w = np.where(world.weighed[world.pair_prod], 110.0, 200.0)
    return np.where(per, WASTE_PROB * w, 0.0)


@dataclass
class DayDemand:
    lines: np.ndarray  # lines per pair
    line_pair: np.ndarray  # pair index of each line (sorted)
    line_qty_h: np.ndarray  # quantity of each line, hundredths
    demand_h: np.ndarray  # per pair: sum of line quantities
    waste_h: np.ndarray  # per pair: waste that would be written off if stock allows


def day_demand(world: World, ordinal: int) -> DayDemand:
    """The day's unconstrained demand. Pure function of (world, ordinal)."""
    rng = day_rng(world.seed, ordinal, DEMAND)
    lam = expected_lines(world, ordinal)
    n = rng.poisson(lam)
    line_pair = np.repeat(np.arange(world.n_pairs), n)
    prod = world.pair_prod[line_pair]
    units = rng.geometric(world.geom_p[prod])
    z = rng.standard_normal(len(line_pair))
    kg_h = np.maximum(5, np.round(100 * world.kg_median[prod] * np.exp(KG_SIGMA * z)))
    qty_h = np.where(world.weighed[prod], kg_h, units * 100).astype(np.int64)
    demand_h = np.bincount(line_pair, weights=qty_h, minlength=world.n_pairs).round().astype(np.int64)

    wu = rng.random(world.n_pairs)
    wq = rng.random(world.n_pairs)
    per = world.perishable[world.pair_prod]
    w = np.where(world.weighed[world.pair_prod], np.round(20 + 180 * wq), (1 + np.floor(3 * wq)) * 100)
    waste_h = np.where(per & (wu < WASTE_PROB), w, 0).astype(np.int64)
    return DayDemand(n, line_pair, qty_h, demand_h, waste_h)
