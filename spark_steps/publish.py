"""Atomic publishing of a Spark DataFrame into the lake with its manifest."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame

from spark_steps.lakefs import LakeFS


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
    same Parquet content."""
    written = lake.spark_output(final_rel)
    df.coalesce(1).sortWithinPartitions(*sort_by).write.mode("errorifexists").parquet(written)
    full = {
        **manifest,
        "path": lake.uri(final_rel),
        "schema": schema_of(df),
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    lake.publish(written, final_rel, full)
    return full
