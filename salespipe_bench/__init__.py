"""``salespipe bench``: the pipeline measured against its targets (issue #8).

Each measurement is a module with ``measure(ctx) -> dict``; the dict has the numbers, the
``target``, ``met`` and a ``note``. ``run_bench`` runs the requested ones in a fixed order,
writes ``results.json`` after each (a later failure keeps what was measured) and, at the
end, the plot. See docs/benchmarks.md.
"""

from __future__ import annotations

import datetime as dt
import importlib
import json
import os
import time
import traceback
from pathlib import Path
from typing import Callable

from salespipe_bench.context import MEASUREMENTS, BenchContext, BenchOptions
from salespipe_bench.machine import describe, load_average

__all__ = ["BenchOptions", "MEASUREMENTS", "run_bench", "RESULTS", "PLOT"]

RESULTS = "results.json"
PLOT = "results.png"
# Cheapest first; spark_vs_duckdb and memory share the full-scale pipeline run.
ORDER = ("spark_vs_duckdb", "memory", "staging_warm", "latency", "history", "catchup")


def run_bench(options: BenchOptions, echo: Callable[[str], None] = print) -> dict:
    unknown = [m for m in options.only if m not in MEASUREMENTS]
    if unknown:
        raise ValueError(f"unknown measurement(s) {', '.join(unknown)}; choose from {', '.join(MEASUREMENTS)}")
    # No BI during a benchmark: the dashboard asset records "skipped" instead of refreshing a
    # Superset that may be running on this machine.
    os.environ["SUPERSET_URL"] = ""
    # The local default is what is measured: the bench's own lakes, instances, partitions.
    for name in ("SALESPIPE_ENV", "SALESPIPE_LAKE", "SALESPIPE_WAREHOUSE", "SALESPIPE_WAREHOUSE_KIND",
                 "SALESPIPE_CATALOG", "SALESPIPE_SPARK_MASTER", "SALESPIPE_PARTITION_START",
                 "SALESPIPE_PARTITION_END", "SALESPIPE_SENSOR_INTERVAL"):
        os.environ.pop(name, None)
    out = Path(options.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    ctx = BenchContext(options, echo)
    results: dict = {
        "generated_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": describe(),
        "options": {"scale": options.scale, "history": options.history,
                    "history_scale": options.effective_history_scale, "only": options.only,
                    "repeat": options.repeat, "latency_runs": options.latency_runs,
                    "sensor_interval": options.sensor_interval,
                    "memory_scales": options.effective_memory_scales,
                    "demo_scale": options.demo_scale, "catchup_days": options.catchup_days},
        "measurements": {},
    }
    if options.merge and (out / RESULTS).is_file():
        _merge_previous(results, json.loads((out / RESULTS).read_text()), options.only)
    t0 = time.perf_counter()
    for name in ORDER:
        if name not in options.only:
            continue
        echo(f"{name}:")
        started = time.perf_counter()
        load_before = load_average()
        try:
            module = importlib.import_module(f"salespipe_bench.{name}")
            result = module.measure(ctx)
        except Exception as exc:  # one measurement failing does not lose the others
            result = {"met": False, "error": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()[-4000:]}
        result["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        result["git_commit"] = results["machine"].get("git_commit")
        result["load_average_before"] = load_before
        result["load_average_after"] = load_average()
        result["bench_seconds"] = round(time.perf_counter() - started, 1)
        results["measurements"][name] = result
        echo(f"  {'met' if result.get('met') else 'NOT met'}: {result.get('note') or result.get('error')}")
        _write(out, results)
    results["machine"]["load_average_at_end"] = load_average()
    results["bench_seconds"] = round(time.perf_counter() - t0, 1)
    _write(out, results)
    from salespipe_bench.plot import plot

    plot(results, out / PLOT)
    return results


def _merge_previous(results: dict, previous: dict, rerun: list[str]) -> None:
    """``--merge``: the measurements not re-run stay, each saying at which commit it was
    measured and when (its own ``finished_at``, else the start of the bench it comes from)."""
    for name, measurement in previous.get("measurements", {}).items():
        if name in rerun:
            continue
        if "finished_at" not in measurement:
            measurement.setdefault("bench_started_at", previous.get("generated_at"))
        measurement.setdefault("git_commit", previous.get("machine", {}).get("git_commit"))
        results["measurements"][name] = measurement


def _write(out: Path, results: dict) -> None:
    tmp = out / f".{RESULTS}.tmp"
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    tmp.replace(out / RESULTS)
