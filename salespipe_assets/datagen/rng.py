"""Deterministic randomness.

Two sources, both pure functions of their inputs so that any day can be generated on its
own and give the same bytes:

- `day_rng(seed, ordinal, stream)`: a numpy Generator for one business day and one use
  (the day's demand, the day's line details ...), from SeedSequence([seed, ordinal, stream]).
- `hash_u01(seed, stream, *keys)`: counter-based uniforms in [0, 1) for things that live on
  blocks of days rather than on one day (a pair's replenishment cycle, a product's
  promotion week), computed element-wise from integer keys with a splitmix64 mix.
"""

from __future__ import annotations

import numpy as np

# stream ids
DIMENSIONS = 1
DEMAND = 2
LINES = 3

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def day_rng(seed: int, ordinal: int, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, ordinal, stream]))


def dim_rng(seed: int, stream: int = DIMENSIONS) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, 0, stream]))


def _mix(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


def hash_u01(seed: int, stream: int, *keys) -> np.ndarray:
    """Uniform [0, 1) per element of the broadcast integer `keys` (non-negative ints)."""
    arrays = np.broadcast_arrays(*[np.asarray(k, dtype=np.int64) for k in keys])
    with np.errstate(over="ignore"):
        h = _mix(np.full(arrays[0].shape, (seed * 1_000_003 + stream) & 0x7FFFFFFFFFFFFFFF, dtype=np.uint64) + _GOLDEN)
        for a in arrays:
            h = _mix(h ^ (a.astype(np.uint64) + _GOLDEN))
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))
