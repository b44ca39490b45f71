"""Atomic publishing of a Spark DataFrame into the lake with its manifest."""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame

from spark_steps.lakefs import MANIFEST, LakeFS


def schema_of(df: DataFrame) -> list[dict]:
    return [{"name": f.name, "type": f.dataType.simpleString()} for f in df.schema.fields]


def publish(
    df: DataFrame,
    lake: LakeFS,
    final_rel: str,
    manifest: dict,
    sort_by: list[str],
) -> dict:
    """Write ``df`` as one sorted Parquet file into a hidden temporary directory, add the
    manifest (Spark adds ``_SUCCESS``), then swap the directory into place.

    One file, sorted: re-publishing the same rows gives the same Parquet content.
    """
    tmp = lake.temp_dir(final_rel)
    df.coalesce(1).sortWithinPartitions(*sort_by).write.mode("errorifexists").parquet(lake.uri(tmp))
    full = {
        **manifest,
        "path": lake.uri(final_rel),
        "schema": schema_of(df),
        "published_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    lake.write_json(f"{tmp}/{MANIFEST}", full)
    lake.swap_in(tmp, final_rel)
    return full
