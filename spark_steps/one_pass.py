"""Stage regular landed files in one pass (SPEC §2): every file read once, its lines
numbered, parsed, typed and judged in one projection, and written by one Spark job.

A file is *regular* when Spark read it whole in a partition of its own (a gzip file, or a
plain one Spark does not split), its first line is exactly the header (a BOM allowed), it
is valid UTF-8 and no line has an odd number of quotes (no record spans lines): what an
unload writes. The job observes that while it runs (``DataFrame.observe``); a file that
turns out not to be regular is left to ``stage_file``'s careful passes, which handle
everything else (quoted headers, records over several lines, bad bytes, quarantine).

The job writes every row into a hidden directory under ``fid=<file>/kind=<accepted, or
the reject reason>``: an accepted row as the staged dataset holds it, each day in one file
in line order; a rejected row as a marker of its line. What is left needs no pass over the
rows again:

- counts come from the written files' footers;
- repeated keys (the first row in file order is kept) from one aggregate over the written
  keys; a day with repeats has its accepted file written again without them;
- rejects keep their line unchanged, so the marked lines (and the repeats) are read again
  from the landed file, only when there are any, and judged again for reason and detail.
  A file read twice must not have changed in between: its SHA-256 is checked again before
  anything is published.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

from pyspark.sql import functions as F

from spark_steps.contract import REASON_DUPLICATE
from spark_steps.csv_parse import _BOM, local_table, parse_records, quote_count, read_lines, records
from spark_steps.lakefs import LakeFS, LakeWriteError
from spark_steps.publish import publish_written, write_by_day
from spark_steps.runtime import observation
from spark_steps.staged import manifest, output_path, published_files, record_counts, record_published, rejects_path
from spark_steps.validate import (
    decided, judged, rejected_rows, rejects_schema, repeated_keys, staged_columns, staged_schema,
)

ACCEPTED = "accepted"
FILES_PER_PASS = 63  # a pass's file facts are bits of one bigint, a bit per file
MAX_REPEATED_KEYS = 200_000  # more keys seen twice than this: the careful passes take the files
_WRITTEN = re.compile(r"fid=(\d+)/kind=([^/]+)/[^/]+\.parquet")


def stage_regular(spark, fs: LakeFS, spec, pairs: list[tuple[str, str]], candidates: list[int],
                  inputs: dict[int, str], results: list[dict], fail) -> list[int]:
    """Stage the files ``candidates`` (indices into ``pairs``, read from ``inputs``) in one
    pass per ``FILES_PER_PASS`` of them. Returns the ones that are not regular, untouched,
    for the careful passes. ``fail(i, reason, quarantine=False)``: file ``i`` fails."""
    careful: list[int] = []
    for start in range(0, len(candidates), FILES_PER_PASS):
        batch = candidates[start:start + FILES_PER_PASS]
        careful += _one_pass(spark, fs, spec, pairs, batch, inputs, results, fail)
    return careful


def _one_pass(spark, fs: LakeFS, spec, pairs, batch: list[int], inputs, results, fail) -> list[int]:
    names = [pairs[i][0].rsplit("/", 1)[-1] for i in batch]
    # Per file, carried by a broadcast table (data, not literals: the generated code is
    # the same whatever the files, so a warm session compiles nothing).
    mapping = local_table(spark, [(name, k, dt.date.fromisoformat(pairs[i][1])) for k, (i, name)
                                  in enumerate(zip(batch, names))],
                          [("_file", "string"), ("_fid", "int"), ("_day", "date")])
    numbered = _numbered(spark, [inputs[i] for i in batch], mapping)
    facts = observation(numbered, f"file-facts-{uuid.uuid4().hex[:8]}")
    rows = judged(parse_records(records(numbered.observe(facts, *_fact_columns(spec)), set()), spec), spec)
    first_day = output_path(spec.name, pairs[batch[0]][1])
    try:
        written = write_by_day(rows.selectExpr(*staged_columns(spec), f"coalesce(reason, '{ACCEPTED}') AS _kind"),
                               fs, first_day, sort_by="source_line", layout="as_read", kind="_kind")
    except LakeWriteError:
        raise
    except Exception:  # a gzip codec, say: the careful passes read each file on its own and say which is bad
        return batch
    scratch = [written]
    try:
        regular = _regular(facts.get, len(batch))
        counts: dict[int, dict[str, int]] = {}
        for rel, n in fs.parquet_rows(written).items():
            m = _WRITTEN.fullmatch(rel)
            if m:
                by_kind = counts.setdefault(int(m[1]), {})
                by_kind[m[2]] = by_kind.get(m[2], 0) + n
        repeats = _repeated(spark, spec, written, [k for k in regular if counts.get(k, {}).get(ACCEPTED)])
        if repeats is None:  # too many to join back by broadcast
            return batch
        accepted_from = {k: f"{written}/fid={k}/kind={ACCEPTED}" for k in regular}
        repeat_lines = None
        if repeats:
            accepted_from, repeat_lines = _without_repeats(spark, fs, spec, written, repeats, first_day, accepted_from,
                                                           scratch)
        marked = {k: [kind for kind in counts.get(k, {}) if kind != ACCEPTED] for k in regular}
        read_again = sorted(k for k in regular if marked[k] or k in repeats)
        rejects_from = {}
        if read_again:
            again = _numbered(spark, [inputs[batch[k]] for k in read_again], mapping)
            rejected = _rejects(spark, spec, written, again, marked, repeats, repeat_lines)
            rejects_written = write_by_day(rejected, fs, rejects_path(spec.name, pairs[batch[0]][1]),
                                           sort_by="line_number", layout="spread", days=len(read_again))
            scratch.append(rejects_written)
            rejects_from = {k: f"{rejects_written}/fid={k}" for k in read_again}
            for k in read_again:
                i = batch[k]
                if not fs.spark_reads_copies:  # else both reads were of one copy
                    if fs.sha256(pairs[i][0]) != results[i]["source_file"]["sha256"]:
                        fail(i, "the file changed while it was being staged: nothing of it is published; "
                                "it is staged again once it lands complete", quarantine=False)
                        regular.discard(k)
        for k in regular:
            by_reason = {kind: n for kind, n in counts.get(k, {}).items() if kind != ACCEPTED}
            if k in repeats:
                by_reason[REASON_DUPLICATE] = sum(n - 1 for _, n, _ in repeats[k])
            record_counts(results[batch[k]], sum(counts.get(k, {}).values()), by_reason)
        done = {batch[k]: results[batch[k]] for k in regular}
        if done:
            published = published_files(fs, spec, done)
            days = {k: (output_path(spec.name, pairs[batch[k]][1]), "rows_accepted") for k in regular
                    if published[batch[k]]}
            schema = publish_written(fs, {k: (rel, manifest(results[batch[k]], rel, key)) for k, (rel, key)
                                          in days.items()}, accepted_from.get, staged_schema(spec))
            rejects = {k: (rejects_path(spec.name, pairs[batch[k]][1]), "rows_rejected") for k in regular}
            publish_written(fs, {k: (rel, manifest(results[batch[k]], rel, key)) for k, (rel, key) in rejects.items()},
                            rejects_from.get, rejects_schema(spec))
            record_published(fs, spec.name, done, published, schema)
        return [batch[k] for k in range(len(batch)) if k not in regular and results[batch[k]].get("error") is None]
    finally:
        for uri in scratch:
            fs.discard(uri)


def _numbered(spark, paths: list[str], mapping):
    """Every line of these files with ``_fid``, ``_line`` (its physical number, assuming
    the file is read whole by one task: ``_regular`` checks that), ``_day``, ``_file``."""
    lines = read_lines(spark, paths).select(F.substring_index("_path", "/", -1).alias("_file"), "_row", "value")
    return lines.join(F.broadcast(mapping), "_file").select(
        "_fid", (F.col("_row") + 1).alias("_line"), "_day", "_file", "value")


def _fact_columns(spec) -> list:
    """What makes a file regular, observed over its lines as bits (one per file)."""
    value, first = F.col("value"), F.col("_line") == 1
    bit = F.expr("shiftleft(CAST(1 AS BIGINT), _fid)")
    header = value.isin(spec.header, _BOM + spec.header)
    odd = F.when(~value.contains('"'), F.lit(False)).otherwise(quote_count(value) % 2 == 1)  # contains: a byte scan
    return [F.count_if(first).alias("starts"), F.bit_or(F.when(first, bit)).alias("started"),
            F.bit_or(F.when(first & header, bit)).alias("header"), F.bit_or(F.when(odd, bit)).alias("odd_quotes"),
            F.bit_or(F.when(~F.is_valid_utf8(value), bit)).alias("bad_utf8")]


def _regular(facts: dict, files: int) -> set[int]:
    """The regular files of a pass, from its observed facts."""
    started = facts["started"] or 0
    if facts["starts"] != bin(started).count("1"):
        return set()  # some file was split over partitions: its line numbers are not physical
    ok = started & (facts["header"] or 0) & ~(facts["odd_quotes"] or 0) & ~(facts["bad_utf8"] or 0)
    return {k for k in range(files) if ok >> k & 1}


def _read_written(spark, written: str, parts: list[str]):
    return spark.read.option("basePath", written).parquet(*[f"{written}/{p}" for p in parts]).withColumn(
        "fid", F.col("fid").cast("int"))


def _repeated(spark, spec, written: str, fids: list[int]) -> dict[int, list[tuple]] | None:
    """``{file: [(key values, rows with that key, first line)]}`` of the keys an accepted
    row repeats; None when there are more than ``MAX_REPEATED_KEYS``. One aggregate over
    the written keys says whether there are any (and how many); only then are they listed."""
    if not spec.unique_key or not fids:
        return {}
    keys = list(spec.unique_key)
    accepted = _read_written(spark, written, [f"fid={k}/kind={ACCEPTED}" for k in fids])
    repeated = accepted.groupBy("fid", *keys).agg(F.count(F.lit(1)).alias("_n")).where("_n > 1")
    [summary] = repeated.agg(F.count(F.lit(1)).alias("keys")).collect()
    if summary["keys"] == 0:
        return {}
    if summary["keys"] > MAX_REPEATED_KEYS:
        return None
    groups = (accepted.join(F.broadcast(repeated), ["fid", *keys])
              .groupBy("fid", *keys, "_n").agg(F.min("source_line").alias("_first_line")).collect())
    out: dict[int, list[tuple]] = {}
    for g in groups:
        out.setdefault(g["fid"], []).append((tuple(g[k] for k in keys), g["_n"], g["_first_line"]))
    return out


def _without_repeats(spark, fs, spec, written, repeats, first_day, accepted_from, scratch):
    """The accepted rows of the days with repeats written again without them; returns where
    every day's accepted rows are now, and the repeated rows' lines (``_fid``, ``_line``)."""
    keys = list(spec.unique_key)
    table = repeated_keys(spark, spec, [(k, key, n, first) for k, groups in repeats.items() for key, n, first in groups])
    repeated = table.select(F.col("_fid").alias("fid"), *[F.col(f"`__typed__{k}`").alias(k) for k in keys],
                            "_first_line")
    rows = _read_written(spark, written, [f"fid={k}/kind={ACCEPTED}" for k in repeats]).join(
        F.broadcast(repeated), ["fid", *keys], "left")
    repeat = F.coalesce(F.col("source_line") > F.col("_first_line"), F.lit(False))
    kept = rows.where(~repeat).select(F.col("fid").alias("_fid"), *staged_schema(spec).fieldNames())
    again = write_by_day(kept, fs, first_day, sort_by="source_line", layout="spread", days=len(repeats))
    scratch.append(again)
    lines = rows.where(repeat).select(F.col("fid").alias("_fid"), F.col("source_line").alias("_line"))
    return {**accepted_from, **{k: f"{again}/fid={k}" for k in repeats}}, lines


def _rejects(spark, spec, written, again, marked, repeats, repeat_lines):
    """The rejected rows (``rejected_rows``) of the lines the pass marked and of the repeats,
    read again from the landed files (``again``) and judged again."""
    wanted = None
    parts = [f"fid={k}/kind={kind}" for k, kinds in marked.items() for kind in kinds]
    if parts:
        wanted = _read_written(spark, written, parts).select(F.col("fid").alias("_fid"),
                                                             F.col("source_line").alias("_line"))
    if repeat_lines is not None:
        wanted = repeat_lines if wanted is None else wanted.unionByName(repeat_lines)
    picked = again.join(wanted, ["_fid", "_line"], "left_semi")
    rows = judged(parse_records(records(picked, set()), spec), spec)
    groups = [(k, key, n, first) for k, gs in repeats.items() for key, n, first in gs]
    return rejected_rows(decided(rows, spec, repeated_keys(spark, spec, groups) if groups else None), spec)
