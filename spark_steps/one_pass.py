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
from pyspark.sql import types as T

from spark_steps.contract import REASON_DUPLICATE
from spark_steps.csv_parse import BOM, local_table, parse_records, quote_count, read_lines, records
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
SMALL_INPUT_BYTES = 4 << 20  # up to this many landed bytes (about 60,000 rows), repeats are found without Spark
_WRITTEN = re.compile(r"fid=(\d+)/kind=([^/]+)/[^/]+\.parquet")


def stage_regular(spark, fs: LakeFS, spec, pairs: list[tuple[str, str]], candidates: list[int],
                  inputs: dict[int, str], results: list[dict], fail) -> list[int]:
    """Stage the files ``candidates`` (indices into ``pairs``, read from ``inputs``) in one
    pass per ``FILES_PER_PASS`` of them. Returns the ones that are not regular, untouched,
    for the careful passes. ``fail(i, reason, quarantine=False)``: file ``i`` fails."""
    careful: list[int] = []
    for start in range(0, len(candidates), FILES_PER_PASS):
        one = _Pass(spark, fs, spec, pairs, candidates[start:start + FILES_PER_PASS], inputs, results)
        try:
            careful += one.stage(fail)
        finally:
            one.discard()
    return careful


class _Pass:
    """One pass over a batch of files of one table; file ``k`` of the batch is ``fid`` k."""

    def __init__(self, spark, fs: LakeFS, spec, pairs, batch: list[int], inputs, results):
        self.spark, self.fs, self.spec, self.batch, self.inputs, self.results = spark, fs, spec, batch, inputs, results
        self.days = [pairs[i][1] for i in batch]
        self.sources = [pairs[i][0] for i in batch]
        # Per file, carried by a broadcast table (data, not literals: the generated code is
        # the same whatever the files, so a warm session compiles nothing).
        self.mapping = local_table(
            spark, [(src.rsplit("/", 1)[-1], k, dt.date.fromisoformat(day))
                    for k, (src, day) in enumerate(zip(self.sources, self.days))],
            [("_file", "string"), ("_fid", "int"), ("_day", "date")])
        self.scratch: list[str] = []  # hidden directories written, removed at the end

    def discard(self) -> None:
        for uri in self.scratch:
            self.fs.discard(uri)

    def stage(self, fail) -> list[int]:
        """Publish the regular files; returns the others (not failed) for the careful passes."""
        try:
            written, facts = self._write_every_row()
        except LakeWriteError:
            raise
        except Exception:  # a gzip codec, say: the careful passes read each file on its own and say which is bad
            return self.batch
        regular = _regular(facts, len(self.batch))
        counts = _counts(self.fs.parquet_rows(written))
        repeats = self._repeated(written, [k for k in regular if counts.get(k, {}).get(ACCEPTED)])
        if repeats is None:  # too many to join back by broadcast
            return self.batch
        accepted_from = {k: f"{written}/fid={k}/kind={ACCEPTED}" for k in regular}
        repeat_lines = None
        if repeats:
            accepted_from, repeat_lines = self._without_repeats(written, repeats, accepted_from)
        marked = {k: [kind for kind in counts.get(k, {}) if kind != ACCEPTED] for k in regular}
        read_again = sorted(k for k in regular if marked[k] or k in repeats)
        rejects_from = {}
        if read_again:
            rejects_from = self._write_rejects(written, read_again, marked, repeats, repeat_lines)
            for k in self._changed(read_again):
                fail(self.batch[k], "the file changed while it was being staged: nothing of it is published; "
                                    "it is staged again once it lands complete", quarantine=False)
                regular.discard(k)
        for k in regular:
            by_reason = {kind: n for kind, n in counts.get(k, {}).items() if kind != ACCEPTED}
            if k in repeats:
                by_reason[REASON_DUPLICATE] = sum(n - 1 for _, n, _ in repeats[k])
            record_counts(self.results[self.batch[k]], sum(counts.get(k, {}).values()), by_reason)
        self._publish(regular, accepted_from, rejects_from)
        return [i for k, i in enumerate(self.batch) if k not in regular and self.results[i].get("error") is None]

    def _numbered(self, fids: list[int]):
        """Every line of these files with ``_fid``, ``_line`` (its physical number, assuming
        the file is read whole by one task: ``_regular`` checks that), ``_day``, ``_file``."""
        lines = read_lines(self.spark, [self.inputs[self.batch[k]] for k in fids]).select(
            F.substring_index("_path", "/", -1).alias("_file"), "_row", "value")
        return lines.join(F.broadcast(self.mapping), "_file").select(
            "_fid", (F.col("_row") + 1).alias("_line"), "_day", "_file", "value")

    def _write_every_row(self) -> tuple[str, dict]:
        """The one job: every row of the batch judged and written, accepted or as a marker
        of its reject reason; returns where, and the file facts it observed."""
        numbered = self._numbered(list(range(len(self.batch))))
        facts = observation(numbered, f"file-facts-{uuid.uuid4().hex[:8]}")
        numbered = numbered.observe(facts, *_fact_columns(self.spec))
        rows = judged(parse_records(records(numbered, set()), self.spec), self.spec)
        written = write_by_day(rows.selectExpr(*staged_columns(self.spec), f"coalesce(reason, '{ACCEPTED}') AS _kind"),
                               self.fs, self._staged(0), sort_by="source_line", layout="as_read", kind="_kind")
        self.scratch.append(written)
        return written, facts.get

    def _staged(self, k: int) -> str:
        return output_path(self.spec.name, self.days[k])

    def _rejects(self, k: int) -> str:
        return rejects_path(self.spec.name, self.days[k])

    def _repeated(self, written: str, fids: list[int]) -> dict[int, list[tuple]] | None:
        """``{file: [(key values, rows with that key, first line)]}`` of the keys an accepted
        row repeats; None when there are more than ``MAX_REPEATED_KEYS``. One aggregate over
        the written keys says whether there are any; only then are they listed."""
        if not self.spec.unique_key or not fids:
            return {}
        if sum(self.results[self.batch[k]]["source_file"]["size"] for k in fids) <= SMALL_INPUT_BYTES:
            return self._repeated_small(written, fids)
        keys = list(self.spec.unique_key)
        accepted = _read_written(self.spark, self.spec, written, [f"fid={k}/kind={ACCEPTED}" for k in fids])
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

    def _repeated_small(self, written: str, fids: list[int]) -> dict[int, list[tuple]]:
        """``_repeated`` for a small input: its written keys (a few thousand values) read here
        with pyarrow and grouped, instead of two Spark jobs and their planning."""
        import pyarrow.compute as pc

        keys = list(self.spec.unique_key)
        out: dict[int, list[tuple]] = {}
        for k in fids:
            table = self.fs.parquet_columns(f"{written}/fid={k}/kind={ACCEPTED}", [*keys, "source_line"])
            groups = table.group_by(keys).aggregate([("source_line", "count"), ("source_line", "min")])
            for g in groups.filter(pc.greater(groups["source_line_count"], 1)).to_pylist():
                out.setdefault(k, []).append((tuple(g[c] for c in keys), g["source_line_count"], g["source_line_min"]))
        return out

    def _repeated_keys(self, repeats: dict[int, list[tuple]]):
        return repeated_keys(self.spark, self.spec, [(k, key, n, first) for k, groups in repeats.items()
                                                     for key, n, first in groups])

    def _without_repeats(self, written: str, repeats, accepted_from: dict[int, str]):
        """The accepted rows of the days with repeats written again without them; returns
        where every day's accepted rows are now, and the repeats' lines (``_fid``, ``_line``)."""
        keys = list(self.spec.unique_key)
        repeated = self._repeated_keys(repeats).select(
            F.col("_fid").alias("fid"), *[F.col(f"`__typed__{k}`").alias(k) for k in keys], "_first_line")
        rows = _read_written(self.spark, self.spec, written, [f"fid={k}/kind={ACCEPTED}" for k in repeats]).join(
            F.broadcast(repeated), ["fid", *keys], "left")
        repeat = F.coalesce(F.col("source_line") > F.col("_first_line"), F.lit(False))
        kept = rows.where(~repeat).select(F.col("fid").alias("_fid"), *staged_schema(self.spec).fieldNames())
        again = write_by_day(kept, self.fs, self._staged(0), sort_by="source_line", layout="spread", days=len(repeats))
        self.scratch.append(again)
        lines = rows.where(repeat).select(F.col("fid").alias("_fid"), F.col("source_line").alias("_line"))
        return {**accepted_from, **{k: f"{again}/fid={k}" for k in repeats}}, lines

    def _write_rejects(self, written: str, fids: list[int], marked, repeats, repeat_lines) -> dict[int, str]:
        """The rejected rows of these files, written by day: the lines the pass marked, and
        the repeats, read again from the landed files and judged again (the reason's detail,
        the fields as read). Returns where each file's rejects are."""
        wanted = None
        parts = [f"fid={k}/kind={kind}" for k in fids for kind in marked[k]]
        if parts:
            wanted = _read_written(self.spark, self.spec, written, parts).select(
                F.col("fid").alias("_fid"), F.col("source_line").alias("_line"))
        if repeat_lines is not None:
            wanted = repeat_lines if wanted is None else wanted.unionByName(repeat_lines)
        picked = self._numbered(fids).join(wanted, ["_fid", "_line"], "left_semi")
        rows = judged(parse_records(records(picked, set()), self.spec), self.spec)
        rejected = rejected_rows(decided(rows, self.spec, self._repeated_keys(repeats) if repeats else None), self.spec)
        out = write_by_day(rejected, self.fs, self._rejects(0), sort_by="line_number", layout="spread", days=len(fids))
        self.scratch.append(out)
        return {k: f"{out}/fid={k}" for k in fids}

    def _changed(self, fids: list[int]) -> list[int]:
        """The files read twice whose content is not what was recorded before the first read."""
        if self.fs.spark_reads_copies:  # both reads were of one copy made for Spark
            return []
        return [k for k in fids if self.fs.sha256(self.sources[k]) != self.results[self.batch[k]]["source_file"]["sha256"]]

    def _publish(self, regular: set[int], accepted_from: dict[int, str], rejects_from: dict[int, str]) -> None:
        done = {self.batch[k]: self.results[self.batch[k]] for k in regular}
        if not done:
            return
        published = published_files(self.fs, self.spec, done)

        def manifests(path_of, count_key: str, fids) -> dict:
            return {k: (path_of(k), manifest(self.results[self.batch[k]], path_of(k), count_key)) for k in fids}

        schema = publish_written(self.fs, manifests(self._staged, "rows_accepted",
                                                    [k for k in regular if published[self.batch[k]]]),
                                 accepted_from.get, staged_schema(self.spec))
        publish_written(self.fs, manifests(self._rejects, "rows_rejected", regular), rejects_from.get,
                        rejects_schema(self.spec))
        record_published(self.fs, self.spec.name, done, published, schema)


def _counts(rows_by_file: dict[str, int]) -> dict[int, dict[str, int]]:
    """``{fid: {kind: rows}}`` from the written files' row counts."""
    counts: dict[int, dict[str, int]] = {}
    for rel, n in rows_by_file.items():
        m = _WRITTEN.fullmatch(rel)
        if m:
            by_kind = counts.setdefault(int(m[1]), {})
            by_kind[m[2]] = by_kind.get(m[2], 0) + n
    return counts


def _fact_columns(spec) -> list:
    """What makes a file regular, observed over its lines as bits (one per file)."""
    value, first = F.col("value"), F.col("_line") == 1
    bit = F.expr("shiftleft(CAST(1 AS BIGINT), _fid)")
    header = value.isin(spec.header, BOM + spec.header)
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


def _read_written(spark, spec, written: str, parts: list[str]):
    """The pass's written rows of these ``fid=<n>/kind=<kind>`` directories. Its schema is
    given (the files' and the two partition columns), so Spark reads no footer to infer it."""
    schema = T.StructType([*staged_schema(spec).fields, T.StructField("fid", T.IntegerType()),
                           T.StructField("kind", T.StringType())])
    return spark.read.schema(schema).option("basePath", written).parquet(*[f"{written}/{p}" for p in parts])
