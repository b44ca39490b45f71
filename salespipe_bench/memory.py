"""Peak memory of the orchestrator against Spark, at two scales.

The same week as ``spark_vs_duckdb`` (seven daily runs, one weekly run, in a worker
process) at two scales, typically 10x apart. The orchestrator is the worker's Python
process (Dagster, the assets, the resources, the SparkSession's Python side, and - locally
- the embedded DuckDB catalog and warehouse); its peak is the kernel's exact high-water
mark of its resident set (``VmHWM``). Spark is the JVM it starts and everything below it
(and any PySpark Python worker below it); its peak is the largest sum
of their PSS (proportional set size: pages shared by the forked workers counted once)
seen by sampling ``/proc`` every 0.2 s. The orchestrator's sampled PSS is reported too,
but not judged: a process's PSS also moves with how many *other* processes on the machine
map the same libraries. Architecture principle 1 - data never flows through the
orchestrator - means the orchestrator's peak must not grow with the data.
"""

from __future__ import annotations

from salespipe_bench.context import BenchContext

TARGET_GROWTH = 0.20


def measure(ctx: BenchContext) -> dict:
    scales = sorted(ctx.options.effective_memory_scales)
    points = []
    for scale in scales:
        run = ctx.pipeline(scale)
        points.append({"scale": scale, "sales_rows": run["generated"]["rows"]["sales"],
                       "raw_bytes": run["generated"]["bytes"], **run["memory"]})
    small, big = points[0], points[-1]
    growth = big["orchestrator_peak_mb"] / small["orchestrator_peak_mb"] - 1
    data_growth = big["sales_rows"] / max(small["sales_rows"], 1)
    spark_growth = big["spark_peak_mb"] / max(small["spark_peak_mb"], 1e-9) - 1
    met = growth < TARGET_GROWTH
    note = (f"One week through the pipeline at scales {', '.join(f'{s:g}' for s in scales)} "
            f"({data_growth:.1f}x the sales rows). Orchestrator (the run's Python process, peak resident set "
            f"VmHWM) {small['orchestrator_peak_mb']:.0f} -> {big['orchestrator_peak_mb']:.0f} MB ({growth:+.0%}); "
            f"Spark (the JVM and anything below it, peak summed PSS) {small['spark_peak_mb']:.0f} -> "
            f"{big['spark_peak_mb']:.0f} MB ({spark_growth:+.0%}). The orchestrator's sampled PSS: "
            f"{small['orchestrator_pss_peak_mb']:.0f} -> {big['orchestrator_pss_peak_mb']:.0f} MB.")
    return {
        "target": f"orchestrator peak grows < {TARGET_GROWTH:.0%} while the data grows ~10x",
        "met": met,
        "points": points,
        "orchestrator_growth": round(growth, 3),
        "spark_growth": round(spark_growth, 3),
        "data_growth": round(data_growth, 2),
        "note": note,
    }
