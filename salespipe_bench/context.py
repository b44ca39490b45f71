"""What the measurements share: options, the work directory, generated data (kept between
bench runs: generating is the slow part), and the pipeline run in a worker process
(shared by ``spark_vs_duckdb`` and ``memory`` when they ask for the same scale)."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess  # nosec B404  # the bench starts its own worker with an argument list
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from salespipe_bench.machine import load_average
from salespipe_bench.procs import MemorySampler
from salespipe_assets.settings import PROJECT_ROOT

MEASUREMENTS = ("spark_vs_duckdb", "history", "latency", "memory", "catchup", "staging_warm")
DEMO_SCALE = 0.01  # what `make run` generates: about 10,000 sales rows a day
SEED = 0
WEEK_START = dt.date(2024, 1, 7)  # a Sunday: the measured full week


@dataclass
class BenchOptions:
    scale: float = 1.0
    history: list[int] = field(default_factory=lambda: [1, 4, 12, 52])
    history_scale: float | None = None  # default: min(scale, 0.1)
    only: list[str] = field(default_factory=lambda: list(MEASUREMENTS))
    out: Path = PROJECT_ROOT / "benchmarks"
    work: Path = PROJECT_ROOT / "data" / "bench"
    repeat: int = 5  # timed repetitions of each history part (the minimum is kept)
    latency_runs: int = 3
    sensor_interval: int | None = None  # None: the product's default
    memory_scales: list[float] | None = None  # default: [scale / 10, scale]
    merge: bool = False  # keep the measurements of an existing results.json that are not re-run
    catchup_days: int = 28  # demo days landed at once in the catchup measurement
    demo: float = DEMO_SCALE

    @property
    def demo_scale(self) -> float:
        """The second scale of spark_vs_duckdb and the catchup's demo days (a bench at a
        tinier --scale stays tiny)."""
        return min(self.demo, self.scale)

    @property
    def effective_history_scale(self) -> float:
        return self.history_scale if self.history_scale is not None else min(self.scale, 0.1)

    @property
    def effective_memory_scales(self) -> list[float]:
        return self.memory_scales or [round(self.scale / 10, 6), self.scale]


def scale_tag(scale: float) -> str:
    return f"{scale:g}".replace(".", "p")


class BenchContext:
    def __init__(self, options: BenchOptions, echo: Callable[[str], None] = print):
        self.options = options
        self.echo = echo
        self.work = Path(options.work).resolve()
        self.work.mkdir(parents=True, exist_ok=True)
        self._pipelines: dict[float, dict] = {}

    # -- generated data ----------------------------------------------------------
    def upstream(self, name: str, start: dt.date, days: int, scale: float) -> Path:
        """A directory whose ``raw/`` holds the generated days (generated once; the
        marker file says with which arguments, so a changed request regenerates)."""
        from salespipe_assets.datagen import generate

        root = self.work / "upstream" / f"{name}-{scale_tag(scale)}"
        marker = root / "generated.json"
        want = {"start": start.isoformat(), "days": days, "scale": scale, "seed": SEED}
        if marker.exists() and json.loads(marker.read_text()).get("args") == want:
            return root
        if root.exists():
            shutil.rmtree(root)
        self.echo(f"  generating {days} days from {start} at scale {scale:g} into {root}")
        report = generate(root, start, days, scale=scale, seed=SEED, progress=False)
        marker.write_text(json.dumps({"args": want, "rows": report["rows"], "bytes": report["bytes"],
                                      "seconds": report["seconds"]}, indent=2))
        return root

    def upstream_facts(self, root: Path) -> dict:
        return json.loads((root / "generated.json").read_text())

    def fresh_dir(self, name: str) -> Path:
        path = self.work / "runs" / name
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        return path

    @staticmethod
    def link_raw(upstream: Path, lake: Path, days: list[str] | None = None) -> int:
        """Hard-link (copy across devices) upstream raw files into ``lake/raw``; returns
        the number of files. Hard links are real files to list and hash, at no disk cost."""
        raw = lake / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        n = 0
        for src in sorted((upstream / "raw").iterdir()):
            if days is not None and not any(f"_{d}.csv" in src.name for d in days):
                continue
            target = raw / src.name
            if target.exists():
                continue
            try:
                os.link(src, target)
            except OSError:
                shutil.copy2(src, target)
            n += 1
        return n

    @staticmethod
    def land(upstream: Path, lake: Path, day: str) -> list[str]:
        """Land a day the way an upload appears: a copy under a temporary name, then a
        rename into ``raw/`` (new modification time, the file appears whole)."""
        landed = []
        for src in sorted((upstream / "raw").glob(f"*_{day}.csv*")):
            target = lake / "raw" / src.name
            part = target.with_name(f".{src.name}.part")
            shutil.copyfile(src, part)
            part.rename(target)
            landed.append(src.name)
        if len(landed) != 5:
            raise RuntimeError(f"upstream has {len(landed)} files for {day}, not 5")
        return landed

    # -- the pipeline in a worker process ------------------------------------------
    def floor(self, scale: float) -> dict:
        """Plain Spark on the same week's raw files (``worker --floor``: typed CSV read,
        Parquet write, no validation) in a fresh worker process with the pipeline's
        session settings."""
        upstream = self.upstream("week", WEEK_START, 7, scale)
        root = self.fresh_dir(f"floor-{scale_tag(scale)}")
        self.link_raw(upstream, root / "lake")
        out = root / "result.json"
        self.echo(f"  plain Spark (typed CSV read -> Parquet) on the same week at scale {scale:g}")
        cmd = [sys.executable, "-m", "salespipe_bench.worker", "--floor", "--lake", str(root / "lake"),
               "--home", str(root / "dagster_home"), "--out", str(out)]
        env = {k: v for k, v in os.environ.items() if k not in ("SALESPIPE_SPARK_MASTER", "SALESPIPE_ENV")}
        load_start = load_average()
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)  # nosec B603  # this interpreter, an argument list
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"floor worker exited with {done.returncode}: {(done.stdout + done.stderr)[-2000:]}")
        result = json.loads(out.read_text())
        shutil.rmtree(root / "lake" / "floor", ignore_errors=True)  # only its time matters
        return {**result, "load_average": {"start": load_start, "end": load_average()}}

    def pipeline(self, scale: float) -> dict:
        """One full week at ``scale`` through ``salespipe run`` semantics (7 daily runs, one
        weekly run) in a worker process, memory sampled; cached per scale."""
        if scale in self._pipelines:
            return self._pipelines[scale]
        upstream = self.upstream("week", WEEK_START, 7, scale)
        root = self.fresh_dir(f"pipeline-{scale_tag(scale)}")
        lake = root / "lake"
        self.link_raw(upstream, lake)
        out = root / "result.json"
        cmd = [sys.executable, "-m", "salespipe_bench.worker", "--lake", str(lake),
               "--home", str(root / "dagster_home"), "--out", str(out), "--event-log", str(root / "spark-events")]
        env = {**os.environ, "SALESPIPE_WAREHOUSE": str(root / "warehouse.duckdb"),
               "SALESPIPE_CATALOG": str(root / "catalog.duckdb")}
        for k in ("SALESPIPE_PARTITION_START", "SALESPIPE_PARTITION_END", "SALESPIPE_SPARK_MASTER", "SALESPIPE_ENV"):
            env.pop(k, None)
        self.echo(f"  running the pipeline on one week at scale {scale:g} (worker process, memory sampled)")
        log = root / "worker.log"
        t0, load_start = time.perf_counter(), load_average()
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, env=env, stdout=logf, stderr=subprocess.STDOUT)  # nosec B603  # this interpreter, an argument list
            with MemorySampler(proc.pid) as sampler:
                proc.wait()
        wall = time.perf_counter() - t0
        if proc.returncode != 0 or not out.exists():
            tail = log.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pipeline worker exited with {proc.returncode}: {tail}")
        result = json.loads(out.read_text())
        if not result["ok"]:
            raise RuntimeError(f"pipeline failed: {result['errors'][:3]}")
        result.update(
            scale=scale, lake=str(lake), upstream=str(upstream), wall_seconds=round(wall, 3),
            generated=self.upstream_facts(upstream),
            memory={"orchestrator_peak_mb": round(sampler.root_hwm / 2**20, 1),  # exact: the kernel's VmHWM
                    "orchestrator_pss_peak_mb": round(sampler.peak["orchestrator"] / 2**20, 1),
                    "spark_peak_mb": round(sampler.peak["spark"] / 2**20, 1),
                    "orchestrator_rss_by_step_mb": result.get("orchestrator_rss_mb"),
                    "samples": sampler.samples},
            event_log=str(root / "spark-events"),
            load_average={"start": load_start, "end": load_average()},
        )
        self._pipelines[scale] = result
        return result
