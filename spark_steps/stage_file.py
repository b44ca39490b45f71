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
import json
import os

from pyspark import StorageLevel
from pyspark.sql import functions as F

from spark_steps.contract import CONTRACT, LANDING_NAME, checked_date
from spark_steps.csv_parse import (
    FileCheck, FileError, check_groups, decode_error, file_groups, first_lines, header_error, parse_records,
    read_lines, records, spark_path_name, with_line_numbers,
)
from spark_steps.lakefs import LakeFS
from spark_steps.one_pass import stage_regular
from spark_steps.publish import publish_days
from spark_steps.runtime import StepFailed, is_connect, main
from spark_steps.staged import (  # noqa: F401  (output_path, rejects_path: this module's API too)
    manifest, output_path, published_files, record_counts, record_published, rejects_path,
)
from spark_steps.validate import (
    accepted_rows, collected_verdicts, count_verdicts, decided, judged, rejected_rows, verdict_groups,
)

ONE_PASS = True  # regular files in one pass (one_pass.py); off: every file takes the careful passes
BROADCAST_REPEATS = 200_000  # keys seen twice joined back by broadcast up to this many
SPREAD_ABOVE_BYTES = 4 << 20  # larger inputs' lines are spread over the cores (a shuffle)


def add_arguments(parser) -> None:
    parser.add_argument("--table", required=True, choices=sorted(CONTRACT))
    parser.add_argument("--source", help="the landed file, relative to the lake")
    parser.add_argument("--business-date")
    parser.add_argument("--files", help='instead of --source/--business-date: a JSON list of '
                        '{"source": "raw/<table>_<day>.csv.gz", "business_date": "<day>"}, one table, distinct days')


def _check_arguments(table: str, source: str, business_date: str) -> None:
    """Arguments become paths: accept only a landing file of this table directly under raw/."""
    if table not in CONTRACT:
        raise ValueError(f"unknown table {table!r}")
    checked_date(business_date, "business date")
    name = source[len("raw/"):] if source.startswith("raw/") else ""
    match = LANDING_NAME.match(name)
    if not match or match.group("table") != table or "/" in name:
        raise ValueError(f"source must be raw/{table}_<YYYY-MM-DD>.csv[.gz], not {source!r}")


def run(spark, lake: str, table: str, source: str | None = None, business_date: str | None = None,
        run_id: str = "", files: list[dict] | str | None = None, **_) -> dict:
    """Stage one file (``source``, ``business_date``): its result, or ``StepFailed`` for a
    bad file. With ``files`` (a list of {source, business_date}, or its JSON): stage them
    all in one pass and return ``{"outcomes": [{"result", "failure"}, ...]}`` in order; a
    bad file is quarantined and reported as its failure, never raised."""
    if files is None:
        if not source or not business_date:
            raise ValueError("give --source and --business-date, or --files")
        outcome = stage_files(spark, lake, table, [{"source": source, "business_date": business_date}], run_id)[0]
        if outcome["failure"]:
            raise StepFailed(outcome["failure"], outcome["result"])
        return outcome["result"]
    if source or business_date:
        raise ValueError("give either --files or --source/--business-date")
    if isinstance(files, str):
        files = json.loads(files)
    return {"outcomes": stage_files(spark, lake, table, files, run_id)}


def stage_files(spark, lake: str, table: str, files: list[dict], run_id: str = "") -> list[dict]:
    """Every file of one table read together, checked and judged in the same passes, each
    day published on its own. Regular files (what an unload writes) take one pass
    (``one_pass``: one Spark job writes every row, then one aggregate over the written keys
    for repeats; the rejected lines are read again only when there are any); the others
    the careful passes (``_stage_carefully``)."""
    pairs = [(f["source"], f["business_date"]) for f in files]
    for src, day in pairs:
        _check_arguments(table, src, day)
    days = [day for _, day in pairs]
    if len(set(days)) != len(days):
        raise ValueError(f"one file per day: {days}")
    fs = LakeFS(lake)
    spec = CONTRACT[table]
    results = [{"table": table, "business_date": day, "source": src, "run_id": run_id} for src, day in pairs]
    failures: list[str | None] = [None] * len(pairs)

    later: list[tuple[int, str, int | None]] = []

    def fail(i: int, reason: str, line: int | None = None, quarantine: bool = True, now: bool = True) -> None:
        if quarantine and not now:  # read by Spark: moved once the other files are written
            later.append((i, reason, line))
            return
        src = pairs[i][0]
        error = _quarantine(fs, src, reason, line, run_id) if quarantine else {"reason": reason}
        results[i]["error"] = error
        failures[i] = f"{src}: {' '.join(reason.split()) or 'unreadable file'}"

    readable = []
    for i, (src, _) in enumerate(pairs):
        if not fs.exists(src):
            fail(i, "file not found", quarantine=False)
            continue
        size = fs.size(src)
        if size == 0:  # Spark's file sources skip empty files, so say it here
            fail(i, "empty file: no header row")
            continue
        results[i]["source_file"] = {"name": src.rsplit("/", 1)[-1], "size": size, "sha256": fs.sha256(src)}
        readable.append(i)
    try:
        if readable:
            _stage_readable(spark, fs, spec, pairs, readable, results,
                            lambda i, reason, line=None, quarantine=True: fail(i, reason, line, quarantine, now=False))
    finally:
        for i, reason, line in later:
            fail(i, reason, line)
    return [{"result": r, "failure": f} for r, f in zip(results, failures)]


def _stage_readable(spark, fs: LakeFS, spec, pairs, readable: list[int], results: list[dict], fail) -> None:
    inputs = {i: fs.spark_input(pairs[i][0]) for i in readable}
    if ONE_PASS:
        readable = stage_regular(spark, fs, spec, pairs, readable, inputs, results, fail)
    if readable:
        _stage_carefully(spark, fs, spec, pairs, readable, inputs, results, fail)


def _stage_carefully(spark, fs: LakeFS, spec, pairs, readable: list[int], inputs: dict[int, str],
                     results: list[dict], fail) -> None:
    """The careful passes, for files that are not regular (see ``one_pass``): the file
    facts first (line counts per partition, header, UTF-8, quotes), then the verdicts, then
    the writes. The lines are read once and cached (narrow: where each line is, and its
    text); every pass works from there, so every pass sees the same content even if a file
    is replaced meanwhile."""
    lines = read_lines(spark, [inputs[i] for i in readable])
    sizes = [results[i]["source_file"]["size"] for i in readable]
    spread = sum(sizes) > SPREAD_ABOVE_BYTES
    # A gzip file is read by one task, so fewer files than cores are spread over the cores
    # (a shuffle), and so are large plain files. Gzip files at least as many as the cores
    # stay as read, a day in one partition from the read to its write: seven scale-1 sales
    # files on local[2], one warm session, 2 rounds, 67-83 s spread, 49-51 s as read (floor
    # 17-21 s); three such files 38 s and 20 s (floor 12 s). Spark packs many small files
    # into about one partition per core (a month of demo days: 2 on local[2]): one
    # partition for them all left a core idle (28 demo days' five tables, 4 rounds,
    # 15.9-17.1 s in one partition, 12.3-13.0 s as read).
    gzip = all(pairs[i][0].endswith(".gz") for i in readable)
    fewer_than_cores = len(readable) < (_local_cores(spark) or len(readable) + 1)
    reshuffled = spread and (fewer_than_cores or (max(sizes) > SPREAD_ABOVE_BYTES and not gzip))
    if reshuffled:
        lines = lines.repartition(int(spark.conf.get("spark.sql.shuffle.partitions")))
    lines = lines.persist(StorageLevel.MEMORY_AND_DISK)
    groups_df = judged_df = None
    try:
        try:
            checks = _checked_files(spec, lines, pairs, readable, inputs, fail)
        except _Unreadable as unreadable:
            bad = _undecodable(spark, spec, readable, inputs)
            if not bad:
                raise unreadable.__cause__ from None
            for i, err in bad.items():
                fail(i, err.reason, err.line)
            rest = [i for i in readable if i not in bad]
            if rest:
                _stage_carefully(spark, fs, spec, pairs, rest, inputs, results, fail)
            return
        if not checks:
            return
        multiline = {i for i, (_, c) in checks.items() if c.multiline}
        published = published_files(fs, spec, {i: results[i] for i in checks})
        files = [(i, dt.date.fromisoformat(pairs[i][1]), pairs[i][0].rsplit("/", 1)[-1], published[i]) for i in checks]
        mapping = {path: (i, c) for i, (path, c) in checks.items()}
        if spread:
            numbered = with_line_numbers(lines, mapping)
            parsed = _file_columns_as_literals(parse_records(records(numbered, multiline), spec), files)
        else:  # the file facts ride in the line mapping's broadcast table (see _file_columns_as_literals)
            numbered = with_line_numbers(lines, mapping, ({f[0]: f[1:] for f in files}, _FILE_COLUMNS[1:]))
            parsed = parse_records(records(numbered, multiline), spec)
        rows = judged(parsed, spec)
        if spread:
            # Pass 1: the verdict counts and the keys seen twice (a narrow aggregate, kept).
            groups_df = verdict_groups(rows, spec).persist(StorageLevel.MEMORY_AND_DISK)
            counts = count_verdicts(groups_df)
            repeated = groups_df
        else:
            # A small input's judged rows are kept: the writes below then start from them,
            # and Spark plans and compiles the parse and the rules once instead of once per
            # pass (planning, not the rows, is most of a small input's cost). Its verdict
            # groups are few (one per reason, one per key seen twice): collected, they come
            # back as data, so joining the repeats back starts no Spark job.
            if is_connect(spark):
                # A Connect server analyzes every plan it is sent from scratch, and the
                # parse and the rules are most of a small input's analysis: checkpointed,
                # the passes below send a plan that starts from the rows. Released when
                # the DataFrame is garbage collected (or the session ends).
                rows = rows.localCheckpoint(eager=True)
            else:
                rows = judged_df = rows.persist(StorageLevel.MEMORY_AND_DISK)
            counts, repeated = collected_verdicts(rows, spec)
        rows_read = _rows_read(checks, multiline, records(numbered, multiline))
        repeats = sum(c.get("duplicate_key", 0) for c in counts.values())
        for i in checks:
            record_counts(results[i], rows_read[i], counts.get(i, {}))
        final = decided(rows, spec, repeated if repeats else None, broadcast=repeats <= BROADCAST_REPEATS)
        # Passes 2 and 3: the accepted rows and (if any) the rejects, each in one write
        # partitioned by day, then every day published on its own.
        # A gzip file is one task of the read, and lines not reshuffled stay there (unless a
        # file's records span lines, or its repeats are too many to broadcast: both are
        # shuffles): each day's rows are in one partition already, the writes keep them there.
        as_read = not reshuffled and not multiline and repeats <= BROADCAST_REPEATS and gzip
        _publish(fs, spec, final, {i: results[i] for i in checks}, published,
                 any(results[i]["rows_rejected"] for i in checks), "as_read" if as_read else
                 "spread" if spread else "one")
    finally:
        for df in (groups_df, judged_df, lines):
            if df is not None:
                df.unpersist()


def _checked_files(spec, lines, pairs, readable, inputs, fail) -> dict[int, tuple[str, FileCheck]]:
    """The facts pass: ``{file index: (spark path, check)}`` of the usable files; the
    others are quarantined through ``fail``. ``_Unreadable`` when a gzip codec failed."""
    try:
        groups = file_groups(lines, spec)
    except Exception as exc:  # the gzip codec's message says what is wrong
        if len(readable) == 1:
            err = decode_error(inputs[readable[0]], exc)
            if isinstance(err, FileError):
                fail(readable[0], err.reason, err.line)
                return {}
            raise
        raise _Unreadable() from exc
    by_name: dict[str, list] = {}
    for g in groups:
        by_name.setdefault(spark_path_name(g["_path"]), []).append(g)
    checks: dict[int, tuple[str, FileCheck]] = {}
    for i in readable:
        mine = by_name.get(pairs[i][0].rsplit("/", 1)[-1])
        if not mine:  # only an empty file has no line at all; it was caught above
            fail(i, "empty file: no header row")
            continue
        check = check_groups(mine)
        if check.error:
            fail(i, check.error.reason, check.error.line)
        else:
            checks[i] = (mine[0]["_path"], check)
    inexact = {path: c for path, c in checks.values() if not c.header_exact}
    if inexact:
        text = first_lines(lines, inexact)
        for i, (path, c) in list(checks.items()):
            if path in inexact:
                err = header_error(spec, text[path], sum(g["lines"] for g in c.groups))
                if err:
                    fail(i, err.reason, err.line)
                    del checks[i]
    return checks


def _local_cores(spark) -> int | None:
    """The cores of a local master (``local[N]``, ``local[*]``); None for a cluster's."""
    master = spark.conf.get("spark.master", "") or ""
    if not master.startswith("local"):
        return None
    count = master[len("local"):].strip("[]").split(",")[0]
    if count in ("", "*"):
        return os.cpu_count() or 1
    return int(count) if count.isdigit() else None


class _Unreadable(Exception):
    """Reading several files together failed in a codec: find the bad ones one by one."""


def _undecodable(spark, spec, readable, inputs) -> dict[int, FileError]:
    """The files among ``readable`` that cannot be decoded, each read on its own."""
    bad = {}
    for i in readable:
        try:
            file_groups(read_lines(spark, inputs[i]), spec)
        except Exception as exc:
            err = decode_error(inputs[i], exc)
            if not isinstance(err, FileError):
                raise
            bad[i] = err
    return bad


def _rows_read(checks: dict, multiline: set[int], recs) -> dict[int, int]:
    """Rows read: the non-blank data lines, or the records of a stitched file."""
    out = {i: c.rows_read for i, (_, c) in checks.items()}
    if multiline:
        for r in recs.where(F.col("_fid").isin(*multiline)).groupBy("_fid").count().collect():
            out[r["_fid"]] = r["count"]
    return out


_FILE_COLUMNS = [("_fid", "int"), ("_day", "date"), ("_file", "string"), ("_pub", "boolean")]


def _file_columns_as_literals(parsed, files: list[tuple]):
    """A large input's file facts - its day, its file name and whether its accepted rows are
    published (``files``: ``(fid, day, name, published)``) - as ``CASE`` literals: one
    compile is nothing next to its run, and a ``CASE`` per row is cheaper than a join (a
    month of files at most). A small input carries them in the line mapping's broadcast
    table instead: literals end up in the generated code, and code that differs per file or
    day is compiled again (Janino, then the JIT) on every call instead of reused."""

    def case(position: int, sql_type: str) -> F.Column:
        out = F.lit(None).cast(sql_type)
        for f in files:
            out = F.when(F.col("_fid") == f[0], F.lit(f[position])).otherwise(out)
        return out

    return parsed.select("*", *(case(k, t).alias(n) for k, (n, t) in enumerate(_FILE_COLUMNS) if k))


def _publish(fs: LakeFS, spec, final, results: dict[int, dict], published: dict[int, bool], any_rejects: bool,
             layout: str) -> None:
    # The published files' rows are told apart by the column _pub (from data, see above), so
    # no list of file ids lands in the generated code.
    accepted = accepted_rows(final if all(published.values()) else final.where("_pub"), spec)
    out = {i: output_path(spec.name, results[i]["business_date"]) for i in results if published[i]}
    schema = publish_days(accepted, fs, {i: (rel, manifest(results[i], rel, "rows_accepted")) for i, rel in out.items()},
                          sort_by="source_line", any_rows=any(results[i]["rows_accepted"] for i in out),
                          layout=layout, filtered=True)
    rejected = rejected_rows(final, spec)
    rej = {i: rejects_path(spec.name, results[i]["business_date"]) for i in results}
    publish_days(rejected, fs, {i: (rel, manifest(results[i], rel, "rows_rejected")) for i, rel in rej.items()},
                 sort_by="line_number", any_rows=any_rejects, layout=layout, filtered=True)
    record_published(fs, spec.name, results, published, schema)


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
