"""Athena as the query engine (``SALESPIPE_ENV=aws``): the asset checks' SQL runs here.

A query is started in a workgroup (results written to the output location), polled until
it finishes or the timeout passes (then it is stopped), and its rows are read page by page
and typed from the result metadata. A failed, cancelled or timed-out query raises an
``AthenaQueryError`` naming the query id, its state, Athena's reason and the SQL.
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

import boto3
import pyarrow.parquet as pq
from pyarrow import fs as pafs

from salespipe_assets.resources.glue import glue_name
from salespipe_assets.resources.query import QueryEngine
from spark_steps.lakefs import LakeFS

_INTEGER = {"tinyint", "smallint", "integer", "int", "bigint"}
_FLOAT = {"double", "float", "real"}


class AthenaQueryError(RuntimeError):
    def __init__(self, query_id: str, state: str, reason: str, sql: str):
        self.query_id, self.state, self.reason = query_id, state, reason
        first_line = " ".join(sql.split())[:200]
        super().__init__(f"Athena query {query_id} {state}: {reason} -- SQL: {first_line}")


class AthenaQueryFailed(AthenaQueryError):
    pass


class AthenaQueryCancelled(AthenaQueryError):
    pass


class AthenaQueryTimedOut(AthenaQueryError):
    pass


def _literal(value) -> str:
    """An ExecutionParameters value: Athena substitutes it into the SQL text as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, Decimal)):
        return str(value)
    if isinstance(value, (dt.date, str)):
        return "'" + str(value).replace("'", "''") + "'"
    raise TypeError(f"unsupported Athena query parameter {value!r}")


def _convert(value: str | None, athena_type: str):
    if value is None:
        return None
    t = athena_type.lower()
    if t in _INTEGER:
        return int(value)
    if t in _FLOAT:
        return float(value)
    if t == "decimal":
        return Decimal(value)
    if t == "boolean":
        return value == "true"
    if t == "date":
        return dt.date.fromisoformat(value)
    if t.startswith("timestamp"):
        return dt.datetime.fromisoformat(value)
    return value


class AthenaQueryEngine(QueryEngine):
    """``database`` is the Glue database queries see unqualified; ``output_location`` may be
    left empty when the workgroup enforces its own. Region, endpoint and credentials come
    from the standard AWS environment."""

    database: str
    workgroup: str = "primary"
    output_location: str | None = None
    region: str | None = None
    poll_seconds: float = 1.0
    timeout_seconds: float = 600.0

    def _client(self):
        return boto3.client("athena", region_name=self.region)

    def start(self, athena, sql: str, params: list | None = None) -> str:
        request = {
            "QueryString": sql,
            "WorkGroup": self.workgroup,
            "QueryExecutionContext": {"Database": glue_name(self.database)},
        }
        if self.output_location:
            request["ResultConfiguration"] = {"OutputLocation": self.output_location}
        if params:
            request["ExecutionParameters"] = [_literal(p) for p in params]
        return athena.start_query_execution(**request)["QueryExecutionId"]

    def wait(self, athena, query_id: str, sql: str) -> dict:
        """Poll until the query succeeds; raise on failure, cancellation or timeout."""
        deadline = time.monotonic() + self.timeout_seconds
        while True:
            execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
            status = execution["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return execution
            reason = status.get("StateChangeReason") or status.get("AthenaError", {}).get("ErrorMessage") or ""
            if state == "FAILED":
                raise AthenaQueryFailed(query_id, state, reason or "no reason given", sql)
            if state == "CANCELLED":
                raise AthenaQueryCancelled(query_id, state, reason or "stopped before it finished", sql)
            if time.monotonic() >= deadline:
                athena.stop_query_execution(QueryExecutionId=query_id)
                raise AthenaQueryTimedOut(query_id, "TIMED OUT",
                                          f"still {state} after {self.timeout_seconds:g} s; stopped", sql)
            time.sleep(self.poll_seconds)

    def rows(self, athena, query_id: str, execution: dict) -> list[tuple]:
        """Every result row, typed; a SELECT's first row (the column labels) is dropped."""
        out: list[tuple] = []
        types: list[str] | None = None
        skip_header = execution.get("StatementType") == "DML"
        for page in athena.get_paginator("get_query_results").paginate(QueryExecutionId=query_id):
            result_set = page["ResultSet"]
            if types is None:
                types = [c["Type"] for c in result_set["ResultSetMetadata"]["ColumnInfo"]]
            page_rows = result_set["Rows"]
            if skip_header and page_rows:
                page_rows, skip_header = page_rows[1:], False
            for row in page_rows:
                out.append(tuple(_convert(d.get("VarCharValue"), t) for d, t in zip(row["Data"], types)))
        return out

    # -- the QueryEngine interface ----------------------------------------------------------
    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        glue_name(self.database)  # before any AWS call
        athena = self._client()
        query_id = self.start(athena, sql, params)
        execution = self.wait(athena, query_id, sql)
        return self.rows(athena, query_id, execution)

    def parquet_rows(self, uri: str) -> int:
        """Rows of a dataset directory from its Parquet footers: Athena reads only catalog
        tables, and a staged partition is checked before it is registered."""
        lake = LakeFS(uri.replace("s3a://", "s3://", 1).removeprefix("file://"))
        infos = lake.fs.get_file_info(pafs.FileSelector(lake.path(""), allow_not_found=True))
        total = 0
        for info in infos:
            if info.type == pafs.FileType.File and info.base_name.endswith(".parquet"):
                with lake.fs.open_input_file(info.path) as f:
                    total += pq.ParquetFile(f).metadata.num_rows
        return total
