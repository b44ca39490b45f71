"""Where Spark's time went, from its event log (``spark.eventLog.enabled``): completed
stages grouped by the call site that started them (``parquet at publish.py:33``)."""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

_SITE = re.compile(r"^(\w+) at (?:.*/)?([\w.]+:\d+)$")


def _site(name: str) -> str:
    m = _SITE.match(name.strip())
    return f"{m.group(1)} at {m.group(2)}" if m else name.strip()[:80]


def stage_profile(event_dir: str | Path, top: int = 12) -> dict:
    """Wall seconds of completed stages and summed task seconds, by call site; the top
    ``top`` sites by stage seconds, and the totals."""
    stages: dict[str, dict] = defaultdict(lambda: {"stages": 0, "stage_seconds": 0.0, "task_seconds": 0.0,
                                                   "tasks": 0})
    task_seconds_by_stage: dict[int, float] = defaultdict(float)
    gc = 0.0
    files = sorted(p for p in Path(event_dir).rglob("*") if p.is_file() and not p.name.startswith(".")) if Path(event_dir).is_dir() else []
    completed = []
    for path in files:
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                kind = event.get("Event")
                if kind == "SparkListenerTaskEnd":
                    metrics = event.get("Task Metrics") or {}
                    task_seconds_by_stage[event["Stage ID"]] += metrics.get("Executor Run Time", 0) / 1000
                    gc += metrics.get("JVM GC Time", 0) / 1000
                elif kind == "SparkListenerStageCompleted":
                    completed.append(event["Stage Info"])
    for info in completed:
        start, end = info.get("Submission Time"), info.get("Completion Time")
        site = stages[_site(info.get("Stage Name", "?"))]
        site["stages"] += 1
        site["tasks"] += info.get("Number of Tasks", 0)
        if start and end:
            site["stage_seconds"] += (end - start) / 1000
        site["task_seconds"] += task_seconds_by_stage.get(info["Stage ID"], 0.0)
    ranked = sorted(stages.items(), key=lambda kv: -kv[1]["stage_seconds"])
    return {
        "stage_seconds_total": round(sum(s["stage_seconds"] for s in stages.values()), 2),
        "task_seconds_total": round(sum(s["task_seconds"] for s in stages.values()), 2),
        "jvm_gc_seconds": round(gc, 2),
        "by_call_site": {k: {kk: round(vv, 2) if isinstance(vv, float) else vv for kk, vv in v.items()}
                         for k, v in ranked[:top]},
    }
