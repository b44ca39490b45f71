"""The pipeline in a process of its own, for the benchmark: ``run_lake`` on a fresh Dagster
instance, the way ``salespipe run`` does it, with timings written as JSON.

    python -m salespipe_bench.worker --lake DIR --home DAGSTER_HOME --out result.json \
        [--event-log DIR]

A separate process so that its memory (this Python process against the Spark JVM below
it) can be sampled from outside, and so that every measurement starts a JVM of its own.
With ``--event-log`` Spark writes its event log there (per-stage timings for profiles).

With ``--floor`` it measures plain Spark instead, with the pipeline's session settings:
every raw file of the lake read by Spark's CSV reader with the contract's typed schema
and written as Parquet (one dataset per table, all its days in one read and one write),
no validation: what Spark itself costs on this machine for the same bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--home", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--event-log", default=None)
    parser.add_argument("--floor", action="store_true", help="plain Spark read + write of raw/, no pipeline")
    args = parser.parse_args()

    t_start = time.perf_counter()
    home = Path(args.home)
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home.resolve())
    os.environ["SUPERSET_URL"] = ""  # no BI in a benchmark: the dashboard asset records "skipped"
    from salespipe_assets.cli import _configure

    _configure(args.lake, None, None)  # the environment first: partitions are read at import
    import dagster as dg

    from salespipe_assets.definitions import build_definitions
    from salespipe_assets.runner import run_lake
    from salespipe_assets.settings import Settings

    settings = Settings.from_env()
    defs = build_definitions(settings)
    t_imported = time.perf_counter()

    spark = defs.resources["spark"]
    if args.event_log:
        Path(args.event_log).mkdir(parents=True, exist_ok=True)
        spark = type(spark)(master=spark.master, conf={**spark.conf, "spark.eventLog.enabled": "true",
                                                       "spark.eventLog.compress": "false",
                                                       "spark.eventLog.dir": Path(args.event_log).resolve().as_uri()})
    # The JVM, timed on its own (the runs' getOrCreate then finds it), started for the lake's
    # landed bytes as the first daily run of `salespipe run` would start it (they pick its JIT).
    landed = sum(p.stat().st_size for p in (Path(args.lake) / "raw").glob("*") if p.is_file())
    session = spark.session(input_bytes=landed)
    t_session = time.perf_counter()
    if args.floor:
        seconds = spark_floor(session, Path(args.lake))
        result = {"ok": True, "seconds": {"imports": round(t_imported - t_start, 3),
                                          "spark_session": round(t_session - t_imported, 3), **seconds}}
        spark.session().stop()
        Path(args.out).write_text(json.dumps(result, indent=2))
        return
    rss = _RssSampler()

    with dg.DagsterInstance.get() as instance:
        summary = run_lake(defs, instance, defs.resources["lake"], progress=False)
        t_done = time.perf_counter()
        rss.stop()
        rss_by_step: dict[str, float] = {}
        for o in summary.days + summary.weeks:
            for step, mb in rss.peak_by_step(instance, o.run_id).items():
                rss_by_step[step] = max(mb, rss_by_step.get(step, 0.0))
        runs = []
        for o in summary.days + summary.weeks:
            record = instance.get_run_record_by_id(o.run_id)
            runs.append({
                "job": record.dagster_run.job_name, "run_id": o.run_id, "partition": o.partition, "ok": o.ok,
                "seconds": (record.end_time - record.start_time) if record.start_time and record.end_time else None,
                "steps": {k: round(v, 3) for k, v in o.step_seconds.items()},
                "errors": o.errors,
            })

    result = {
        "ok": summary.ok,
        "errors": summary.all_errors(),
        "seconds": {
            "imports": round(t_imported - t_start, 3),
            "spark_session": round(t_session - t_imported, 3),
            "run_lake": round(t_done - t_session, 3),
            "pipeline": round(t_done - t_imported, 3),  # JVM start + every run: the Spark path
        },
        "runs": runs,
        # Where the orchestrator's resident set peaked: the largest RSS sampled while each
        # step ran (every run of it), and before the first run (imports, the JVM started).
        "orchestrator_rss_mb": {"before_runs": rss.before_runs, "by_step": dict(sorted(rss_by_step.items()))},
        "metadata": {o.partition: o.metadata.get("weekly_sales_inventory", {}).get("dagster/row_count")
                     for o in summary.weeks},
    }
    spark.session().stop()  # flushes the event log
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))


def spark_floor(session, lake: Path) -> dict:
    """Plain Spark on the lake's raw files: per table, one typed CSV read of all its
    files and one Parquet write. Seconds per table and in all."""
    from pyspark.sql import types as T

    from spark_steps.contract import CONTRACT
    from spark_steps.validate import spark_type

    by_table: dict[str, float] = {}
    t0 = time.perf_counter()
    for table, spec in CONTRACT.items():
        files = sorted(str(p.resolve()) for p in (lake / "raw").glob(f"{table}_*.csv*"))
        if not files:
            continue
        schema = T.StructType([T.StructField(c.name, spark_type(c.type)) for c in spec.columns])
        started = time.perf_counter()
        (session.read.csv([f"file://{f}" for f in files], schema=schema, header=True)
         .write.mode("overwrite").parquet((lake / "floor" / table).resolve().as_uri()))
        by_table[table] = round(time.perf_counter() - started, 3)
    return {"spark_floor": round(time.perf_counter() - t0, 3), "by_table": by_table}


class _RssSampler:
    """This process's resident set every 0.2 s, in a thread, with wall-clock times."""

    def __init__(self):
        import threading

        self.before_runs = _rss_mb()
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.2):
            self.samples.append((time.time(), _rss_mb()))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def peak_by_step(self, instance, run_id: str) -> dict[str, float]:
        import dagster as dg

        starts: dict[str, float] = {}
        peaks: dict[str, float] = {}
        kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
        for record in instance.get_records_for_run(run_id, of_type=kinds).records:
            entry = record.event_log_entry
            if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
                starts[entry.step_key] = entry.timestamp
            elif entry.step_key in starts:
                window = [mb for t, mb in self.samples if starts[entry.step_key] <= t <= entry.timestamp]
                if window:
                    peaks[entry.step_key] = round(max(window), 1)
        return peaks


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    return 0.0


if __name__ == "__main__":
    main()
