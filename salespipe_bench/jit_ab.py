"""A/B of the local driver JVM's JIT settings (issue 13 point 2), fresh JVM per sample.

Two workloads, each in a new process with its own JVM started from the CDS archive:
``demo`` stages a demo day's five files (scale 0.01, side by side like ``stage_day``)
and builds its week; ``scale1`` stages one scale-1 sales file. Variants are run
interleaved (A, B, C, A, B, C, ...) so that the load of a shared machine falls on
every variant alike; medians are reported.

    python -m salespipe_bench.jit_ab --demo DIR --scale1 DIR --repeat 3 --out ab.json

DIR holds ``raw/`` as ``salespipe generate`` writes it (one day).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess  # nosec B404  # this interpreter, an argument list
import sys
import tempfile
import time
from pathlib import Path

VARIANTS = {
    "c1_only": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m",
    "tiered": "-XX:+TieredCompilation",
    # C2 later (thresholds about 3x the defaults): fewer optimising compiles in a short JVM
    "tiered_late_c2": "-XX:+TieredCompilation -XX:Tier4InvocationThreshold=15000 "
                      "-XX:Tier4MinInvocationThreshold=2000 -XX:Tier4CompileThreshold=45000 "
                      "-XX:Tier4BackEdgeThreshold=120000",
}


def _sample(workload: str, upstream: str, options: str) -> dict:
    """Run one workload in this process (the child side)."""
    from concurrent.futures import ThreadPoolExecutor

    from spark_steps import build_weekly_fact, stage_file
    from spark_steps.runtime import spark_session

    t0 = time.perf_counter()
    spark = spark_session("salespipe-jit-ab", "local[2]", {"spark.driver.extraJavaOptions": options})
    started = time.perf_counter()
    lake = Path(tempfile.mkdtemp(prefix="jit-ab-"))
    try:
        (lake / "raw").mkdir()
        files = sorted(Path(upstream, "raw").iterdir())
        if workload == "scale1":
            files = [f for f in files if f.name.startswith("sales_")]
        for f in files:
            os.link(f, lake / "raw" / f.name) if f.stat().st_dev == lake.stat().st_dev else shutil.copy(f, lake / "raw")
        jobs = [(f.name.split("_")[0], f"raw/{f.name}", f.name.split("_")[1][:10]) for f in files]
        with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
            list(pool.map(lambda j: stage_file.run(spark, str(lake), *j), jobs))
        staged = time.perf_counter()
        week = None
        if workload == "demo":
            day = jobs[0][2]
            import datetime as dt

            d = dt.date.fromisoformat(day)
            sunday = d - dt.timedelta(days=d.isoweekday() % 7)
            build_weekly_fact.run(spark, str(lake), sunday.isoformat())
            week = time.perf_counter() - staged
    finally:
        spark.stop()
        shutil.rmtree(lake, ignore_errors=True)
    return {"jvm_start": started - t0, "stage": staged - started, "week": week,
            "total": time.perf_counter() - t0}


def run_ab(dirs: dict[str, str], repeat: int, variants: dict[str, str]) -> dict:
    samples: dict = {w: {v: [] for v in variants} for w in dirs}
    for i in range(repeat):
        for workload, upstream in dirs.items():
            for name, options in variants.items():
                t0 = time.perf_counter()
                out = subprocess.run(  # nosec B603  # this interpreter, fixed arguments
                    [sys.executable, "-m", "salespipe_bench.jit_ab", "--child", workload, upstream, options],
                    capture_output=True, text=True, check=False)
                if out.returncode != 0:
                    raise RuntimeError(f"{workload}/{name}: {out.stderr[-2000:]}")
                sample = json.loads(out.stdout.strip().splitlines()[-1])
                sample["process_wall"] = time.perf_counter() - t0
                samples[workload][name].append(sample)
                print(f"[{i}] {workload:7s} {name:20s} " + " ".join(
                    f"{k}={v:.1f}" for k, v in sample.items() if v is not None), flush=True)
    medians = {w: {v: {k: round(statistics.median(s[k] for s in ss), 2)
                       for k in ss[0] if ss[0][k] is not None}
                   for v, ss in by_v.items()} for w, by_v in samples.items()}
    return {"variants": variants, "repeat": repeat, "medians": medians, "samples": samples,
            "load_average": os.getloadavg()}


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(_sample(*sys.argv[2:5])))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo")
    parser.add_argument("--scale1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    dirs = {k: v for k, v in (("demo", args.demo), ("scale1", args.scale1)) if v}
    chosen = {k: VARIANTS[k] for k in args.variants.split(",")}
    Path(args.out).write_text(json.dumps(run_ab(dirs, args.repeat, chosen), indent=2, default=str))
