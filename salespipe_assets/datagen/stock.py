"""Stock on hand as a closed-form function of (world, pair, day).

Each pair is replenished on a fixed cycle (every `period` days, offset `phase`). On a
delivery day the shelf is filled up to an order-up-to level
    S = max(min shelf stock, coverage x expected demand over the cycle)
where coverage is a per-(pair, cycle) draw: usually above 1, sometimes below (a short
delivery, a bad forecast) so that stock runs out before the next delivery. Within a
cycle stock only goes down, so the opening stock on day D is
    max(0, S - sum over the cycle's earlier days of (demand + waste)),
which needs only the demand of at most 6 earlier days, each a pure function of its own
day. Sales are demand capped by the opening stock, waste is capped by what is left, and
inventory_on_hand_qty is the stock at the end of the day.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .demand import DayDemand, day_demand, expected_lines, expected_waste_h
from .dims import World
from .rng import hash_u01

_COVER, _SHORT = 21, 22
# coverage of the cycle's expected demand: 0.75 + 0.9 U, except short deliveries
COVER_LOW, COVER_SPAN, COVER_SKEW = 0.75, 0.9, 1.0
SHORT_SHARE = 0.06  # cycles with a short delivery: coverage 0.2-0.6
# safety stock: one average day of demand plus one standard deviation of the cycle's demand
SAFETY_DAYS, SAFETY_SD = 1.0, 1.0


@dataclass
class DayStock:
    opening_h: np.ndarray
    sold_h: np.ndarray
    waste_h: np.ndarray
    on_hand_h: np.ndarray
    on_order_h: np.ndarray
    next_delivery: np.ndarray  # ordinal


class DemandCache:
    """Keeps the last few days' demand so consecutive days are not re-drawn."""

    def __init__(self, world: World, size: int = 10):
        self.world, self.size, self._d = world, size, OrderedDict()

    def get(self, ordinal: int) -> DayDemand:
        if ordinal not in self._d:
            self._d[ordinal] = day_demand(self.world, ordinal)
            while len(self._d) > self.size:
                self._d.popitem(last=False)
        return self._d[ordinal]


def _order_up_to(world: World, cycle: np.ndarray, start: np.ndarray) -> np.ndarray:
    pair_id = np.arange(world.n_pairs)
    exp_h = np.zeros(world.n_pairs)
    for j in range(int(world.period.max())):
        inside = j < world.period
        exp_h += np.where(inside, expected_lines(world, start + j) * world.mean_qty_h + expected_waste_h(world), 0.0)
    u = hash_u01(world.seed, _COVER, pair_id, cycle)
    cover = COVER_LOW + COVER_SPAN * u ** COVER_SKEW
    short = hash_u01(world.seed, _SHORT, pair_id, cycle)
    cover = np.where(short < SHORT_SHARE, 0.2 + 0.4 * short / SHORT_SHARE, cover)
    safety = SAFETY_DAYS * exp_h / world.period + SAFETY_SD * np.sqrt(exp_h * world.mean_qty_h)
    step = np.where(world.weighed[world.pair_prod], 50, 100)  # 0.5 kg or whole units
    level = np.ceil((cover * exp_h + safety) / step) * step
    return np.maximum(world.min_stock_h, level).astype(np.int64)


def day_stock(world: World, ordinal: int, cache: DemandCache) -> DayStock:
    P, phase = world.period, world.phase
    cycle = (ordinal + phase) // P
    start = cycle * P - phase  # ordinal of this cycle's delivery day
    s_now = _order_up_to(world, cycle, start)
    s_next = _order_up_to(world, cycle + 1, start + P)

    used = np.zeros(world.n_pairs, dtype=np.int64)
    for j in range(1, int((ordinal - start).max()) + 1):
        d = cache.get(ordinal - j)
        used += np.where(ordinal - j >= start, d.demand_h + d.waste_h, 0)
    opening = np.maximum(0, s_now - used)

    today = cache.get(ordinal)
    sold = np.minimum(today.demand_h, opening)
    waste = np.minimum(today.waste_h, opening - sold)
    on_hand = opening - sold - waste
    on_order = np.maximum(0, s_next - on_hand)
    return DayStock(opening, sold, waste, on_hand, on_order, start + P)
