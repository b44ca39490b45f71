"""Peak memory of the orchestrator against Spark, at two scales.

The same week as ``spark_vs_duckdb`` (seven daily runs, one weekly run, in a worker
process) at two scales, typically 10x apart. ``/proc`` is sampled every 0.2 s: the
orchestrator is the worker's Python process (Dagster, the assets, the resources; the
SparkSession's driver side in Python), Spark is the JVM it starts and everything below it
(PySpark's Python workers that parse the CSV files included). Architecture principle 1 -
data never flows through the orchestrator - means the first must not grow with the data.
"""

from __future__ import annotations

from salespipe_assets.bench.context import BenchContext

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
            f"({data_growth:.1f}x the sales rows). Orchestrator (the run's Python process) peak "
            f"{small['orchestrator_peak_mb']:.0f} -> {big['orchestrator_peak_mb']:.0f} MB ({growth:+.0%}); "
            f"Spark (JVM + its Python workers) peak {small['spark_peak_mb']:.0f} -> {big['spark_peak_mb']:.0f} MB "
            f"({spark_growth:+.0%}). Memory is PSS (shared pages split among the processes sharing them) sampled "
            f"from /proc every 0.2 s and summed per group; "
            f"worker_vmhwm_mb is the kernel's exact high-water mark of the orchestrator process.")
    return {
        "target": f"orchestrator peak grows < {TARGET_GROWTH:.0%} while the data grows ~10x",
        "met": met,
        "points": points,
        "orchestrator_growth": round(growth, 3),
        "spark_growth": round(spark_growth, 3),
        "data_growth": round(data_growth, 2),
        "note": note,
    }
