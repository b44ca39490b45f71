"""The Glue Data Catalog as the catalog (``SALESPIPE_ENV=aws``).

One Glue database; one external Parquet table per curated dataset, its columns read from
the Parquet files actually written (footers only, through the lake's LakeFS); Hive
partitions (``week_start``, ``business_date``) registered in batches. Create-or-update:
a run that finds nothing new calls no write API, a new column is appended and no
column is ever dropped. Rows visible are counted from Parquet footers, and remembered
per partition (``numRows``) next to a fingerprint of its files, so only new or
re-published partitions are read again.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from dataclasses import dataclass

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from salespipe_assets.resources.catalog import FACT_TABLE, Catalog
from salespipe_assets.resources.lake import Lake
from spark_steps.contract import CONTRACT, DAILY_TABLES, SNAPSHOT_TABLES, checked_date

GLUE_BATCH = 100  # BatchCreatePartition / BatchUpdatePartition accept at most 100 entries
PARQUET_SD = {
    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
    "SerdeInfo": {"SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe",
                  "Parameters": {"serialization.format": "1"}},
    "Compressed": False,
}
FILES_PARAM = "salespipe.files"
ROWS_PARAM = "numRows"
_GLUE_NAME = re.compile(r"[A-Za-z0-9_]{1,255}")  # what Athena accepts unquoted


def glue_name(name: str) -> str:
    """A Glue database name from configuration, if it is one Athena can use as written."""
    if not isinstance(name, str) or not _GLUE_NAME.fullmatch(name):
        raise ValueError(f"not a Glue/Athena database name (letters, digits, _): {name!r}")
    return name


def _is_date(value: str) -> bool:
    try:
        checked_date(value)
        return True
    except ValueError:
        return False


@dataclass(frozen=True)
class Dataset:
    rel: str  # directory relative to the lake root
    partition_key: str | None  # Hive partition column (a date), or None for a snapshot


def datasets() -> dict[str, Dataset]:
    """Catalog table name -> where its Parquet lives (the same names as the DuckDB catalog)."""
    out = {FACT_TABLE: Dataset(f"curated/{FACT_TABLE}", "week_start")}
    out.update({t: Dataset(f"curated/{t}", None) for t in SNAPSHOT_TABLES})
    out.update({f"staged_{t}": Dataset(f"staged/{t}", "business_date") for t in DAILY_TABLES})
    out.update({f"rejects_{t}": Dataset(f"rejects/{t}", "business_date") for t in CONTRACT})
    return out


def glue_type(t: pa.DataType) -> str:
    """Hive/Athena type of a Parquet (Arrow) column; anything unexpected is an error, not a guess."""
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp"
    simple = {
        pa.bool_(): "boolean", pa.int8(): "tinyint", pa.int16(): "smallint", pa.int32(): "int",
        pa.int64(): "bigint", pa.float32(): "float", pa.float64(): "double", pa.date32(): "date",
        pa.string(): "string", pa.large_string(): "string", pa.binary(): "binary",
    }
    if t in simple:
        return simple[t]
    raise TypeError(f"no Glue type for Parquet column type {t}")


def merge_columns(existing: list[dict], written: list[dict], table: str) -> list[dict]:
    """Existing columns in their order, then the new ones; a changed type stops the update."""
    known = {c["Name"]: c["Type"] for c in existing}
    for c in written:
        if c["Name"] in known and known[c["Name"]] != c["Type"]:
            raise ValueError(f"Glue table {table}: column {c['Name']} is {known[c['Name']]} in the catalog "
                             f"but {c['Type']} in the Parquet written; not changing a column's type")
    return [*existing, *[c for c in written if c["Name"] not in known]]


@dataclass
class _Files:
    """Published Parquet files of a dataset, grouped by partition value ('' when unpartitioned)."""

    by_partition: dict[str, list[pafs.FileInfo]]

    def fingerprint(self, value: str) -> str:
        listing = "|".join(f"{f.base_name}:{f.size}" for f in self.by_partition[value])
        return hashlib.sha256(listing.encode()).hexdigest()[:16]


def _published_files(lake: Lake, ds: Dataset) -> _Files:
    """One recursive listing; only partitions that carry the success marker count, hidden
    staging directories (``.tmp-*``, ``.old-*``) never do."""
    fs = lake.fs
    if not fs.exists(ds.rel):
        return _Files({})
    base = fs.path(ds.rel)
    infos = fs.fs.get_file_info(pafs.FileSelector(base, recursive=True))
    parquet, published = defaultdict(list), set()
    for info in infos:
        if info.type != pafs.FileType.File:
            continue
        parts = info.path[len(base) + 1:].split("/")
        if any(p.startswith((".", "_")) for p in parts[:-1]):
            continue
        if ds.partition_key:
            if len(parts) != 2 or not parts[0].startswith(f"{ds.partition_key}="):
                continue
            value = parts[0].split("=", 1)[1]
            if not _is_date(value):
                continue  # not a partition this pipeline writes: never catalogued
        elif len(parts) != 1:
            continue
        else:
            value = ""
        if parts[-1] == "_SUCCESS":
            published.add(value)
        elif parts[-1].endswith(".parquet"):
            parquet[value].append(info)
    return _Files({v: sorted(files, key=lambda f: f.path) for v, files in sorted(parquet.items()) if v in published})


class GlueCatalog(Catalog):
    """Glue tables over the lake's Parquet. AWS endpoint, region and credentials come from the
    standard AWS environment (``AWS_REGION``, ``AWS_ENDPOINT_URL``, profiles, instance roles)."""

    database: str
    region: str | None = None

    def _client(self):
        return boto3.client("glue", region_name=self.region)

    # -- the Catalog interface ----------------------------------------------------------
    def register_fact_week(self, lake: Lake, week: str) -> dict:
        checked_date(week, "week")
        glue_name(self.database)
        visible = self._register(self._client(), lake, FACT_TABLE, schema_from=week)
        if visible is None:
            return {"rows_in_week": 0, "rows_total": 0}
        return {"rows_in_week": visible["partitions"].get(week, 0), "rows_total": visible["rows"],
                "glue_table": f"{self.database}.{FACT_TABLE}", **visible["changes"]}

    def register_tables(self, lake: Lake, tables: list[str]) -> dict[str, int]:
        glue_name(self.database)
        glue = self._client()
        rows = {}
        for table in tables:
            visible = self._register(glue, lake, table)
            if visible is not None:
                rows[table] = visible["rows"]
        return rows

    # -- internals -----------------------------------------------------------------------
    def _ensure_database(self, glue) -> None:
        try:
            glue.get_database(Name=self.database)
        except glue.exceptions.EntityNotFoundException:
            try:
                glue.create_database(DatabaseInput={
                    "Name": self.database, "Description": "salespipe curated, staged and rejects datasets"})
            except glue.exceptions.AlreadyExistsException:
                pass  # created concurrently

    def _register(self, glue, lake: Lake, table: str, schema_from: str | None = None) -> dict | None:
        ds = datasets()[table]
        files = _published_files(lake, ds)
        if not files.by_partition:
            return None  # a table over no data appears with its first data, as in the DuckDB catalog
        self._ensure_database(glue)
        value = schema_from if schema_from in files.by_partition else list(files.by_partition)[-1]
        with lake.fs.fs.open_input_file(files.by_partition[value][0].path) as f:
            schema = pq.read_schema(f)
        written = [{"Name": c.name, "Type": glue_type(c.type)} for c in schema if c.name != ds.partition_key]
        columns, table_changed = self._upsert_table(glue, lake, table, ds, written)
        if ds.partition_key is None:
            rows = sum(self._footer_rows(lake, f) for f in files.by_partition[""])
            return {"rows": rows, "partitions": {}, "changes": {"table_updated": table_changed}}
        partitions, added, updated = self._sync_partitions(glue, lake, table, ds, files, columns)
        return {"rows": sum(partitions.values()), "partitions": partitions,
                "changes": {"table_updated": table_changed, "partitions_added": added,
                            "partitions_updated": updated}}

    def _location(self, lake: Lake, rel: str) -> str:
        # Glue and Athena name S3 locations s3://, whatever scheme Spark uses.
        return ("s3://" if lake.fs.is_s3 else "file://") + lake.fs.path(rel) + "/"

    def _upsert_table(self, glue, lake: Lake, table: str, ds: Dataset, written: list[dict]) -> tuple[list[dict], bool]:
        partition_keys = [{"Name": ds.partition_key, "Type": "date"}] if ds.partition_key else []
        try:
            current = glue.get_table(DatabaseName=self.database, Name=table)["Table"]
        except glue.exceptions.EntityNotFoundException:
            current = None
        existing = current["StorageDescriptor"]["Columns"] if current else []
        columns = merge_columns([{"Name": c["Name"], "Type": c["Type"]} for c in existing], written, table)
        location = self._location(lake, ds.rel)
        table_input = {
            "Name": table,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {**(current or {}).get("Parameters", {}), "classification": "parquet", "EXTERNAL": "TRUE"},
            "PartitionKeys": partition_keys,
            "StorageDescriptor": {**PARQUET_SD, "Columns": columns, "Location": location},
        }
        if current is None:
            glue.create_table(DatabaseName=self.database, TableInput=table_input)
            return columns, True
        unchanged = (len(columns) == len(existing) and current["StorageDescriptor"].get("Location") == location
                     and [(k["Name"], k["Type"]) for k in current.get("PartitionKeys", [])]
                     == [(k["Name"], k["Type"]) for k in partition_keys])
        if not unchanged:
            glue.update_table(DatabaseName=self.database, TableInput=table_input)
        return columns, not unchanged

    def _sync_partitions(self, glue, lake: Lake, table: str, ds: Dataset, files: _Files,
                         columns: list[dict]) -> tuple[dict[str, int], int, int]:
        registered = {}
        pages = glue.get_paginator("get_partitions").paginate(DatabaseName=self.database, TableName=table)
        for page in pages:
            for p in page["Partitions"]:
                registered[p["Values"][0]] = p
        rows, to_create, to_update = {}, [], []
        for value in files.by_partition:
            fingerprint = files.fingerprint(value)
            current = registered.get(value)
            params = (current or {}).get("Parameters", {})
            if current and params.get(FILES_PARAM) == fingerprint and \
                    _names_types(current["StorageDescriptor"]["Columns"]) == _names_types(columns):
                rows[value] = int(params.get(ROWS_PARAM, 0))
                continue
            rows[value] = sum(self._footer_rows(lake, f) for f in files.by_partition[value])
            entry = {
                "Values": [value],
                "Parameters": {FILES_PARAM: fingerprint, ROWS_PARAM: str(rows[value])},
                "StorageDescriptor": {**PARQUET_SD, "Columns": columns,
                                      "Location": self._location(lake, f"{ds.rel}/{ds.partition_key}={value}")},
            }
            (to_update if current else to_create).append(entry)
        for i in range(0, len(to_create), GLUE_BATCH):
            r = glue.batch_create_partition(DatabaseName=self.database, TableName=table,
                                            PartitionInputList=to_create[i:i + GLUE_BATCH])
            # a concurrent run registering the same week is not an error
            _raise_on_errors(table, "create", [e for e in r.get("Errors", [])
                                               if e.get("ErrorDetail", {}).get("ErrorCode") != "AlreadyExistsException"])
        for i in range(0, len(to_update), GLUE_BATCH):
            r = glue.batch_update_partition(DatabaseName=self.database, TableName=table, Entries=[
                {"PartitionValueList": e["Values"], "PartitionInput": e} for e in to_update[i:i + GLUE_BATCH]])
            _raise_on_errors(table, "update", r.get("Errors", []))
        return rows, len(to_create), len(to_update)

    @staticmethod
    def _footer_rows(lake: Lake, info: pafs.FileInfo) -> int:
        with lake.fs.fs.open_input_file(info.path) as f:
            return pq.ParquetFile(f).metadata.num_rows


def _names_types(columns: list[dict]) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in columns]


def _raise_on_errors(table: str, action: str, errors: list[dict]) -> None:
    if errors:
        first = errors[0]
        detail = first.get("ErrorDetail", {})
        raise RuntimeError(f"Glue could not {action} {len(errors)} partition(s) of {table}, e.g. "
                           f"{first.get('PartitionValues')}: {detail.get('ErrorCode')} {detail.get('ErrorMessage')}")
