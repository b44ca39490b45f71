"""Where Spark's time went, from its event log (``spark.eventLog.enabled``).

Every SQL execution (one per action: a collect, a write) is put in a category read from
its physical plan - which pass of the staging step, which write, the fact's aggregation -
and in the table it works on, because the call sites PySpark records are mostly
``collectToPython at NativeMethodAccessorImpl.java:0`` when actions run in threads. For
each category: executions, wall seconds (start to end of each execution, summed: the
five files of a day run side by side, so these overlap) and task seconds (executor run
time of its tasks: the work itself).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

_TABLE = re.compile(r"(?:raw/|/staged/|/rejects/|/curated/)(sales|inventory|store|product|calendar|weekly_sales_inventory)")


def _category(plan: str) -> str:
    cached = "InMemoryTableScan" in plan or "InMemoryRelation" in plan
    if "InsertIntoHadoopFsRelationCommand" in plan:
        if "/curated/weekly_sales_inventory" in plan:
            return "write fact"
        if "/rejects/" in plan:
            return "write rejects (the rejected lines read again and judged again)"
        if cached:
            return "careful passes: write (parse the cached lines again, type, anti-join, sort, write)"
        if "Scan text" in plan:
            return "one pass: read, number, parse, type, judge and write every row"
        return "write accepted rows again without repeats"
    if "Union" in plan and cached:
        return "careful passes: verdicts (parse, type, rules, duplicates)"
    if "Scan text" in plan:
        return "careful passes: read the lines (decompress, cache), file checks and counts"
    if "Scan parquet" in plan and "HashAggregate" in plan:  # "FileScan parquet" in the plan's tree, "Scan parquet" in its formatted form
        if "kind=accepted" in plan:
            return "repeats: one aggregate over the written keys"
        return "fact: aggregate the week's staged days"
    return "other"


def _table(plan: str) -> str:
    """The table written, for a write (the fact's reads name the staged tables first); else the first read."""
    write = plan.rfind("InsertIntoHadoopFsRelationCommand")  # the formatted plan details its root last
    m = _TABLE.search(plan, write) if write >= 0 else None
    m = m or _TABLE.search(plan)
    if m:
        return m.group(1)
    return "store, product or calendar" if "/curated/.tmp-" in plan else "-"  # a snapshot's written rows


def stage_profile(event_dir: str | Path, top: int = 16) -> dict:
    """Seconds by operation (category, table), ranked by task seconds; totals."""
    files = sorted(p for p in Path(event_dir).rglob("*") if p.is_file() and not p.name.startswith(".")) \
        if Path(event_dir).is_dir() else []
    executions: dict[int, dict] = {}
    stage_execution: dict[int, int] = {}
    task_seconds: dict[int, float] = defaultdict(float)  # by stage
    gc = 0.0
    for path in files:
        with open(path, errors="replace") as f:
            for line in f:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(event, dict):
                    continue
                kind = event.get("Event", "")
                if kind.endswith("SQLExecutionStart"):
                    plan = event.get("physicalPlanDescription", "")
                    executions[event["executionId"]] = {"start": event["time"], "category": _category(plan),
                                                        "table": _table(plan)}
                elif kind.endswith("SQLExecutionEnd"):
                    if event["executionId"] in executions:
                        executions[event["executionId"]]["end"] = event["time"]
                elif kind == "SparkListenerJobStart":
                    execution = (event.get("Properties") or {}).get("spark.sql.execution.id")
                    if execution is not None:
                        for stage in event.get("Stage IDs", []):
                            stage_execution[stage] = int(execution)
                elif kind == "SparkListenerTaskEnd":
                    metrics = event.get("Task Metrics") or {}
                    task_seconds[event["Stage ID"]] += metrics.get("Executor Run Time", 0) / 1000
                    gc += metrics.get("JVM GC Time", 0) / 1000
    for stage, seconds in task_seconds.items():
        execution = executions.get(stage_execution.get(stage, -1))
        if execution is not None:
            execution["task_seconds"] = execution.get("task_seconds", 0.0) + seconds
    ops: dict[str, dict] = defaultdict(lambda: {"executions": 0, "wall_seconds": 0.0, "task_seconds": 0.0})
    for e in executions.values():
        op = ops[f"{e['category']} [{e['table']}]"]
        op["executions"] += 1
        op["wall_seconds"] += (e.get("end", e["start"]) - e["start"]) / 1000
        op["task_seconds"] += e.get("task_seconds", 0.0)
    ranked = sorted(ops.items(), key=lambda kv: -kv[1]["task_seconds"])
    return {
        "task_seconds_total": round(sum(task_seconds.values()), 2),
        "jvm_gc_seconds": round(gc, 2),
        "sql_executions": len(executions),
        "by_operation": {k: {kk: round(vv, 2) if isinstance(vv, float) else vv for kk, vv in v.items()}
                         for k, v in ranked[:top]},
    }
