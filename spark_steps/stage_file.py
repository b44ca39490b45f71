"""Stage one landed file (SPEC §2): validate, publish accepted rows and rejects, or
quarantine the whole file.

Daily tables (sales, inventory) publish ``staged/<table>/business_date=<day>/``.
Snapshot tables (store, product, calendar) publish ``curated/<table>/`` - only when the
day is not older than the snapshot already published, so a backfill of an old day never
replaces a newer dimension.

    spark-submit spark_steps/stage_file.py --lake DIR --table sales \
        --source raw/sales_2024-01-07.csv.gz --business-date 2024-01-07
"""

from __future__ import annotations

import datetime as dt

from pyspark import StorageLevel

from spark_steps.contract import CONTRACT, LANDING_NAME, checked_date
from spark_steps.csv_parse import FileError, inspect_file, parse_lines, read_lines
from spark_steps.lakefs import MANIFEST, LakeFS
from spark_steps.publish import publish, schema_of
from spark_steps.runtime import StepFailed, main
from spark_steps.validate import accepted_rows, duplicate_repeats, rejected_lines, rejected_rows, verdicts

BROADCAST_REJECTS = 200_000  # rejected lines of a file joined by broadcast up to this many
SPREAD_ABOVE_BYTES = 4 << 20  # a larger file's lines are spread over the cores (a shuffle)


def add_arguments(parser) -> None:
    parser.add_argument("--table", required=True, choices=sorted(CONTRACT))
    parser.add_argument("--source", required=True, help="the landed file, relative to the lake")
    parser.add_argument("--business-date", required=True)


def output_path(table: str, business_date: str) -> str:
    checked_date(business_date, "business date")
    if CONTRACT[table].daily:
        return f"staged/{table}/business_date={business_date}"
    return f"curated/{table}"


def rejects_path(table: str, business_date: str) -> str:
    return f"rejects/{table}/business_date={checked_date(business_date, 'business date')}"


def _check_arguments(table: str, source: str, business_date: str) -> None:
    """Arguments become paths: accept only a landing file of this table directly under raw/."""
    if table not in CONTRACT:
        raise ValueError(f"unknown table {table!r}")
    checked_date(business_date, "business date")
    name = source[len("raw/"):] if source.startswith("raw/") else ""
    match = LANDING_NAME.match(name)
    if not match or match.group("table") != table or "/" in name:
        raise ValueError(f"source must be raw/{table}_<YYYY-MM-DD>.csv[.gz], not {source!r}")


def run(spark, lake: str, table: str, source: str, business_date: str, run_id: str = "", **_) -> dict:
    _check_arguments(table, source, business_date)
    fs = LakeFS(lake)
    spec = CONTRACT[table]
    name = source.rsplit("/", 1)[-1]
    result: dict = {"table": table, "business_date": business_date, "source": source, "run_id": run_id}

    if not fs.exists(source):
        raise StepFailed(f"{source}: file not found", {**result, "error": {"reason": "file not found"}})
    size = fs.size(source)
    if size == 0:  # Spark's file sources skip empty files, so say it here
        error = _quarantine(fs, source, "empty file: no header row", None, run_id)
        raise StepFailed(f"{source}: {error['reason']}", {**result, "error": error})

    # The file's lines are read once and cached (narrow: a line number and the text);
    # every pass parses them from there, so every pass sees the same content even if the
    # file is replaced meanwhile, and the wide parsed rows are never cached. A gzip file
    # is read by one task: a large file's cached lines are spread over the cores.
    result["source_file"] = {"name": name, "size": size, "sha256": fs.sha256(source)}
    lines = read_lines(spark, fs.spark_input(source))
    if size > SPREAD_ABOVE_BYTES:
        lines = lines.repartition(spark.sparkContext.defaultParallelism)
    lines = lines.persist(StorageLevel.MEMORY_AND_DISK)
    judged = rejected = None
    try:
        try:
            facts = inspect_file(spec, fs.spark_input(source), lines)
        except FileError as err:
            error = _quarantine(fs, source, err.reason, err.line, run_id)
            raise StepFailed(f"{source}: {error['reason']}", {**result, "error": error}) from None

        def parsed():
            return parse_lines(lines, spec, name, facts.offsets)

        # Pass 1: every row's verdict, narrow (line, reason, key), cached.
        judged = verdicts(parsed(), spec, business_date if spec.daily else None).persist(StorageLevel.MEMORY_AND_DISK)
        rejected = rejected_lines(judged, duplicate_repeats(judged, spec)).persist(StorageLevel.MEMORY_AND_DISK)
        by_reason = {r["reason"]: r["count"] for r in rejected.groupBy("reason").count().collect()}
        rows_rejected = sum(by_reason.values())
        result.update(
            rows_read=facts.rows_read,
            rows_accepted=facts.rows_read - rows_rejected,
            rows_rejected=rows_rejected,
            rejects_by_reason=dict(sorted(by_reason.items())),
        )
        # Passes 2 and 3 join the file's rows with the rejected lines: broadcast unless a
        # file is mostly bad (then a shuffle join rather than a huge broadcast).
        broadcast = rows_rejected <= BROADCAST_REJECTS
        result.update(_publish(fs, spec, accepted_rows(parsed(), spec, rejected, broadcast),
                               rejected_rows(parsed(), spec, rejected, broadcast), result, business_date))
    finally:
        for df in (rejected, judged, lines):
            if df is not None:
                df.unpersist()
    return result


def _publish(fs: LakeFS, spec, accepted, rejects, result: dict, business_date: str) -> dict:
    counts = {k: result[k] for k in ("rows_read", "rows_accepted", "rows_rejected", "rejects_by_reason")}
    base = {
        "business_date": business_date,
        "run_id": result["run_id"],
        "source_files": [result["source_file"]],
        **counts,
    }
    out = output_path(spec.name, business_date)
    published = True
    if not spec.daily:
        current = fs.read_json(f"{out}/{MANIFEST}")
        published = current is None or current["business_date"] <= business_date
    if published:
        publish(accepted, fs, out,
                {**base, "dataset": out, "row_count": result["rows_accepted"]}, sort_by=["source_line"])
    rej = rejects_path(spec.name, business_date)
    publish(rejects, fs, rej,
            {**base, "dataset": rej, "row_count": result["rows_rejected"]}, sort_by=["line_number"])
    return {"output_path": fs.uri(out), "published": published, "rejects_path": fs.uri(rej),
            "schema": schema_of(accepted)}


def _quarantine(fs: LakeFS, source: str, reason: str, line: int | None, run_id: str) -> dict:
    """Move the file aside with a JSON reason next to it; never overwrite an earlier one."""
    name = source.rsplit("/", 1)[-1]
    target, n = f"quarantine/{name}", 1
    while fs.exists(target):
        n += 1
        target = f"quarantine/{name}.{n}"
    fs.move(source, target)
    error = {
        "file": source,
        "reason": reason,
        "line": line,
        "quarantined_to": target,
        "run_id": run_id,
        "detected_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    fs.write_json(f"{target}.reason.json", error)
    return error


if __name__ == "__main__":
    main(run, add_arguments)
