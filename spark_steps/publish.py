"""Atomic publishing of a Spark DataFrame into the lake with its manifest."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame

from spark_steps.lakefs import LakeFS, LakeWriteError, io_failure_reason


def schema_of(df: DataFrame) -> list[dict]:
    return [{"name": f.name, "type": f.dataType.simpleString()} for f in df.schema.fields]


def publish(
    df: DataFrame,
    lake: LakeFS,
    final_rel: str,
    manifest: dict,
    sort_by: list[str],
) -> dict:
    """Write ``df`` as one sorted Parquet file, then publish it with its manifest
    (see ``LakeFS.publish``). One file, sorted: re-publishing the same rows gives the
    same Parquet content.

    When Spark cannot write (the lake is full, unwritable, or a file stands where a
    directory should be), ``LakeWriteError`` says so in one line naming ``final_rel``;
    nothing is left behind (Spark aborts its job; its staging directory is removed)."""
    written = lake.spark_output(final_rel)
    try:
        # repartition, not coalesce: coalesce(1) would pull the whole upstream plan
        # (parsing, typing, joins) into a single task.
        df.repartition(1).sortWithinPartitions(*sort_by).write.mode("errorifexists").parquet(written)
    except Exception as exc:
        lake.discard(written)
        reason = io_failure_reason(exc)
        if reason is None:
            raise
        raise LakeWriteError(lake.uri(final_rel), reason) from exc
    full = {
        **manifest,
        "path": lake.uri(final_rel),
        "schema": schema_of(df),
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    lake.publish(written, final_rel, full)
    return full
