"""Warm a fresh local Spark Connect server before the first run needs it.

A new server JVM pays class loading, Janino code generation and the JIT on its first
queries: the first landed day's staging took 18 s on a fresh server against 7 s on one
that had served three days (``salespipe bench --only latency``). ``salespipe dev``'s
supervisor therefore stages a tiny generated day and builds its week in a throwaway lake
of its own, in a Connect session of its own, right after each (re)start. Nothing of it
reaches the project's lake, catalog or Dagster instance; a failure is logged and ignored
(the runs then pay the cold start, as without it).
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

WARMUP_WEEK = dt.date(2024, 1, 7)  # a Sunday: its day is staged and its week built
WARMUP_SCALE = 0.001  # about 1,000 sales rows: the same plans as a real day, little data


def warm_up(url: str) -> float:
    """Stage one generated day and build its week on the server at ``url``; seconds taken."""
    from salespipe_assets.datagen import generate
    from spark_steps import build_weekly_fact, stage_file
    from spark_steps.contract import CONTRACT
    from spark_steps.runtime import spark_session, use_session_kind

    started = time.perf_counter()
    lake = tempfile.mkdtemp(prefix="salespipe-spark-warmup-")
    try:
        generate(lake, start=WARMUP_WEEK, days=1, scale=WARMUP_SCALE, progress=False)
        spark = spark_session(remote=url)
        use_session_kind(spark)
        try:
            day = WARMUP_WEEK.isoformat()
            files = {t: [{"source": f"raw/{t}_{day}.csv.gz", "business_date": day}] for t in CONTRACT}
            with ThreadPoolExecutor(max_workers=len(files)) as pool:  # as stage_day runs them
                list(pool.map(lambda t: stage_file.run(spark, lake, t, files=files[t], run_id="warm-up"), files))
            build_weekly_fact.run(spark, lake, week_starts=[day], run_id="warm-up")
        finally:
            spark.stop()
    finally:
        shutil.rmtree(lake, ignore_errors=True)
    return time.perf_counter() - started
