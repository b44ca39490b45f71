"""Catching up (issue 14): many days landed at once, run to the warehouse by one
``salespipe run`` (whatever the runner does at the time: one run per day, or ranges).

Two points: ``catchup_days`` demo days (28 at scale 0.01, what ``make run`` lands) and
the largest ``--history`` week count (52) at ``--history-scale``. Each starts from an
empty lake, warehouse, catalog and Dagster instance; the command is timed from its start
to its exit, and every week of the range must be published for the point to count.
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess  # nosec B404  # the project's own CLI, an argument list
import sys
import time
from collections import Counter
from pathlib import Path

from salespipe_bench.context import WEEK_START, BenchContext, scale_tag
from salespipe_bench.machine import load_average

TARGET_DEMO_SECONDS = 60.0  # issue 14: 28 demo days -> warehouse
TARGET_SECONDS_PER_DAY = 1.5  # issue 14, at scale 0.01


def measure(ctx: BenchContext) -> dict:
    o = ctx.options
    points = [catch_up(ctx, "demo", o.catchup_days, o.demo_scale),
              catch_up(ctx, "history", 7 * max(o.history), o.effective_history_scale)]
    demo = points[0]
    met = demo["wall_seconds"] <= TARGET_DEMO_SECONDS and demo["seconds_per_day"] <= TARGET_SECONDS_PER_DAY
    note = " ".join(
        f"{p['days']} days at scale {p['scale']:g} landed at once -> warehouse by one `salespipe run`: "
        f"{p['wall_seconds']:.1f} s wall, {p['seconds_per_day']:.2f} s per day "
        f"({', '.join(f'{n} {job}' for job, n in p['runs'].items())})." for p in points)
    return {"target": f"{o.catchup_days} demo days <= {TARGET_DEMO_SECONDS:g} s wall and <= "
                      f"{TARGET_SECONDS_PER_DAY:g} s per day (issue 14)",
            "met": met, "points": points, "note": note}


def catch_up(ctx: BenchContext, name: str, days: int, scale: float) -> dict:
    upstream = ctx.upstream(f"catchup-{name}", WEEK_START, days, scale)
    root = ctx.fresh_dir(f"catchup-{name}-{scale_tag(scale)}")
    lake, home = root / "lake", root / "dagster_home"
    ctx.link_raw(upstream, lake)
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SALESPIPE_")}
    env.update(DAGSTER_HOME=str(home), SALESPIPE_CATALOG=str(root / "catalog.duckdb"), SUPERSET_URL="")
    cmd = [str(Path(sys.executable).parent / "salespipe"), "run", "--lake", str(lake),
           "--warehouse", str(root / "warehouse.duckdb"), "--quiet"]
    ctx.echo(f"  salespipe run over {days} days landed at once at scale {scale:g}")
    load_start = load_average()
    t0 = time.perf_counter()
    with open(root / "run.log", "wb") as log:
        code = subprocess.run(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, check=False).returncode  # nosec B603
    wall = time.perf_counter() - t0
    weeks = _weeks(days)
    published = sorted(p.parent.name.split("=", 1)[1]
                       for p in (lake / "curated" / "weekly_sales_inventory").glob("week_start=*/_SUCCESS"))
    if code != 0 or published != weeks:
        tail = (root / "run.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"salespipe run over {days} days exited {code}, published weeks {published[:3]}... "
                           f"(want {len(weeks)}): {tail}")
    return {"name": name, "days": days, "scale": scale, "weeks": len(weeks),
            "generated_rows": ctx.upstream_facts(upstream)["rows"],
            "wall_seconds": round(wall, 2), "seconds_per_day": round(wall / days, 3),
            "runs": _runs_by_job(home), "steps": _step_seconds(home),
            "load_average": {"start": load_start, "end": load_average()}}


def _weeks(days: int) -> list[str]:
    sundays = {WEEK_START + dt.timedelta(days=i - (WEEK_START + dt.timedelta(days=i)).isoweekday() % 7)
               for i in range(days)}
    return sorted(d.isoformat() for d in sundays)


def _runs_by_job(home: Path) -> dict[str, int]:
    """How many runs of each job the command made, from its Dagster instance."""
    return _with_instance(home, lambda instance: dict(Counter(r.job_name for r in instance.get_runs())))


def _step_seconds(home: Path) -> dict[str, dict[str, float]]:
    """Where the wall time went: per job, each run's wall (start to end) and each step's
    seconds, summed over the job's runs; what the command did besides is the rest."""
    def collect(instance) -> dict:
        out: dict[str, dict[str, float]] = {}
        for run in instance.get_runs():
            by = out.setdefault(run.job_name, {})
            record = instance.get_run_record_by_id(run.run_id)
            if record and record.start_time and record.end_time:
                by["run_wall"] = round(by.get("run_wall", 0) + record.end_time - record.start_time, 2)
            for step in instance.get_run_step_stats(run.run_id):
                if step.start_time and step.end_time:
                    by[step.step_key] = round(by.get(step.step_key, 0) + step.end_time - step.start_time, 2)
        return out

    return _with_instance(home, collect)


def _with_instance(home: Path, fn):
    import dagster as dg

    before = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with dg.DagsterInstance.get() as instance:
            return fn(instance)
    finally:
        if before is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = before
