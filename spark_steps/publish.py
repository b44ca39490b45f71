"""Atomic publishing of a Spark DataFrame into the lake with its manifest."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_steps.lakefs import LakeFS, LakeWriteError, io_failure_reason


def schema_of(df: DataFrame) -> list[dict]:
    return [{"name": f.name, "type": f.dataType.simpleString()} for f in df.schema.fields]


def publish(
    df: DataFrame,
    lake: LakeFS,
    final_rel: str,
    manifest: dict | Callable[[], dict],
    sort_by: list[str],
) -> dict:
    """Write ``df`` as one sorted Parquet file, then publish it with its manifest
    (see ``LakeFS.publish``). One file, sorted: re-publishing the same rows gives the
    same Parquet content. ``manifest`` may be a function, called after the write (for
    counts the write itself observes).

    When Spark cannot write (the lake is full, unwritable, or a file stands where a
    directory should be), ``LakeWriteError`` says so in one line naming ``final_rel``;
    nothing is left behind (Spark aborts its job; its staging directory is removed)."""
    written = lake.spark_output(final_rel)
    try:
        # repartition, not coalesce: coalesce(1) would pull the whole upstream plan
        # (parsing, typing, joins) into a single task. Mode "error" (= errorifexists, which
        # a Spark Connect session does not accept).
        df.repartition(1).sortWithinPartitions(*sort_by).write.mode("error").parquet(written)
    except Exception as exc:
        lake.discard(written)
        reason = io_failure_reason(exc)
        if reason is None:
            raise
        raise LakeWriteError(lake.uri(final_rel), reason) from exc
    full = {
        **(manifest() if callable(manifest) else manifest),
        "path": lake.uri(final_rel),
        "schema": schema_of(df),
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    lake.publish(written, final_rel, full)
    return full


def arrow_schema(schema: T.StructType):
    import pyarrow as pa

    def arrow(t):
        if isinstance(t, T.DecimalType):
            return pa.decimal128(t.precision, t.scale)
        return {T.LongType: pa.int64(), T.IntegerType: pa.int32(), T.DateType: pa.date32(),
                T.BooleanType: pa.bool_(), T.StringType: pa.string()}[type(t)]

    return pa.schema([pa.field(f.name, arrow(f.dataType)) for f in schema.fields])


def publish_written(lake: LakeFS, days: dict[int, tuple[str, dict]], source_of: Callable[[int], str | None],
                    schema: T.StructType) -> list[dict]:
    """Publish, for every ``days[fid] = (final_rel, manifest)``, the one Parquet file Spark
    wrote under ``source_of(fid)`` (a directory handed out by ``LakeFS.spark_output``, or
    below it), atomically with its manifest; a day whose source is None or empty gets an
    empty Parquet file with ``schema``. Returns the schema as manifests record it."""
    import os
    import tempfile

    import pyarrow.parquet as pq

    data_schema = [{"name": f.name, "type": f.dataType.simpleString()} for f in schema.fields]
    empty_schema = None
    for fid, (final_rel, manifest) in days.items():
        source = source_of(fid)
        if source is None or not lake.has_files(source):
            if empty_schema is None:
                empty_schema = arrow_schema(schema)
            local = tempfile.mkdtemp(prefix="salespipe-empty-")
            pq.write_table(empty_schema.empty_table(), os.path.join(local, "part-00000.parquet"))
            source = "file://" + local
        full = {**manifest, "path": lake.uri(final_rel), "schema": data_schema,
                "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
        lake.publish(source, final_rel, full)
    return data_schema


def write_by_day(df: DataFrame, lake: LakeFS, dataset_rel: str, sort_by: str, layout: str, days: int = 1,
                 kind: str | None = None) -> str:
    """Write ``df``'s rows into a fresh hidden directory (``LakeFS.spark_output`` for
    ``dataset_rel``), partitioned by ``_fid`` (as ``fid=<n>``, and by the column ``kind``
    too when given), each partition sorted by ``sort_by``; returns its URI. ``layout``: see
    ``publish_days``. When Spark cannot write, nothing is left behind and the error is
    ``LakeWriteError`` (an I/O reason) or Spark's own."""
    written = lake.spark_output(dataset_rel)
    try:
        rows = df
        if layout == "spread":
            parts = min(days, int(df.sparkSession.conf.get("spark.sql.shuffle.partitions")))
            rows = rows.repartition(parts, "_fid")
        elif layout == "one":
            rows = rows.coalesce(1)
        elif layout != "as_read":
            raise ValueError(f"unknown layout {layout!r}")
        order = ["_fid", kind, sort_by] if kind else ["_fid", sort_by]
        rows = rows.sortWithinPartitions(*order).withColumnRenamed("_fid", "fid")
        partitions = ["fid"]
        if kind:
            rows, partitions = rows.withColumnRenamed(kind, "kind"), ["fid", "kind"]
        rows.write.mode("error").partitionBy(*partitions).parquet(written)
    except Exception as exc:
        lake.discard(written)
        reason = io_failure_reason(exc)
        if reason is None or "FAILED_READ_FILE" in str(exc):  # reading an input failed (a gzip codec, say)
            raise
        raise LakeWriteError(lake.uri(dataset_rel), reason) from exc
    return written


def publish_days(df: DataFrame, lake: LakeFS, days: dict[int, tuple[str, dict]], sort_by: str,
                 any_rows: bool = True, layout: str = "spread", filtered: bool = False) -> list[dict]:
    """Publish the rows of several days, told apart by the column ``_fid``, each as its
    own dataset ``days[fid] = (final_rel, manifest)``: one Spark write partitioned by
    ``_fid`` into a hidden staging directory, then every day's single sorted Parquet file
    published atomically with its manifest (``LakeFS.publish``). A day without rows gets
    an empty Parquet file with the schema; with ``any_rows`` false Spark writes nothing.
    ``layout``: how the rows reach the write's tasks. "spread": shuffled by day, over the
    cores. "one" (a small input): brought into one task without a shuffle (``coalesce``),
    so the write is one Spark job. "as_read": every day's rows are in one partition already
    (each came from one gzip file, one task of the read, and nothing shuffled them): written
    as they are, one task per partition, a day still one file. ``filtered``: ``df`` holds only rows of
    the ``days`` already. Returns the schema (without ``_fid``)."""
    data_schema = df.drop("_fid").schema
    if not days:
        return schema_of(df.drop("_fid"))
    written = None
    if any_rows:
        rows = df if filtered else df.where(F.col("_fid").isin(*days))
        written = write_by_day(rows, lake, next(iter(days.values()))[0], sort_by, layout, days=len(days))
    try:
        return publish_written(lake, days, lambda fid: f"{written}/fid={fid}" if written else None, data_schema)
    finally:
        if written:
            lake.discard(written)
