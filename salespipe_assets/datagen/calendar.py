"""The calendar snapshot.

Sent every day, it covers the whole years year-2 .. year+1 around the file's day (so it
depends on the day only, and always covers the full Sunday-Saturday week of any day
generated). Conventions (documented in docs/generator.md):

- day_of_wk_num: 0 = Sunday .. 6 = Saturday
- wk_num: week of the calendar year, weeks start on Sunday, the week containing 1 January
  is week 1 (like Excel WEEKNUM(d, 1)); 1..53, 54 in a leap year starting on a Saturday.
- yr_wk_num = yr_num * 100 + wk_num, yr_mnth_num = yr_num * 100 + mnth_num,
  yr_qtr_num = yr_num * 10 + qtr_num.
"""

from __future__ import annotations

import datetime as dt
import functools

import numpy as np
import pyarrow as pa

from .arrowutil import date_array
from .refdata import DAY_NAMES

CAL_TYPE = "Gregorian"


@functools.lru_cache(maxsize=8)
def calendar_table(year: int) -> pa.Table:
    """Calendar rows for 1 Jan (year-2) .. 31 Dec (year+1)."""
    first = dt.date(year - 2, 1, 1).toordinal()
    last = dt.date(year + 1, 12, 31).toordinal()
    o = np.arange(first, last + 1, dtype=np.int64)
    d64 = (o - 719163).astype("datetime64[D]")
    yr = d64.astype("datetime64[Y]").astype(np.int64) + 1970
    mon = d64.astype("datetime64[M]").astype(np.int64) % 12 + 1
    jan1 = d64.astype("datetime64[Y]").astype("datetime64[D]")
    doy0 = (d64 - jan1).astype(np.int64)  # 0-based day of year
    dow = o % 7  # ordinal 7 (0001-01-07) is a Sunday: 0 = Sunday
    jan1_dow = (jan1.astype(np.int64) + 719163) % 7
    wk = (doy0 + jan1_dow) // 7 + 1
    qtr = (mon - 1) // 3 + 1
    i32 = lambda a: pa.array(a.astype(np.int32), pa.int32())  # noqa: E731
    return pa.table({
        "cal_dt": date_array(o),
        "cal_type_desc": pa.array(np.full(len(o), CAL_TYPE, dtype=object), pa.string()),
        "day_of_wk_num": i32(dow),
        "day_of_wk_desc": pa.array(np.array(DAY_NAMES, dtype=object)[dow], pa.string()),
        "yr_num": i32(yr),
        "wk_num": i32(wk),
        "yr_wk_num": i32(yr * 100 + wk),
        "mnth_num": i32(mon),
        "yr_mnth_num": i32(yr * 100 + mon),
        "qtr_num": i32(qtr),
        "yr_qtr_num": i32(yr * 10 + qtr),
    })
