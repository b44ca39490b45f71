"""The Athena query engine against a moto server endpoint standing in for Athena (and S3
for the output location).

moto runs no SQL: the rows a query returns are seeded through moto's
``/moto-api/static/athena/query-results`` queue, and how long a query stays QUEUED/RUNNING
through its state manager (``/moto-api/state-manager/set-transition``). What is tested is
the client side: the request (SQL, workgroup, database, output location, parameters), the
polling, the stop on timeout, the typing of the values and the errors. Two states moto
cannot produce - a FAILED query and a result split over pages - are played by botocore's
``Stubber`` on a real Athena client, which answers from a queue of canned API responses.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.request
from decimal import Decimal

import boto3
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.stub import Stubber

from salespipe_assets.resources.athena import (
    AthenaQueryCancelled,
    AthenaQueryEngine,
    AthenaQueryFailed,
    AthenaQueryTimedOut,
)
from spark_steps.lakefs import LakeFS
from tests.servers import moto_server

OUTPUT = "s3://athena-results/salespipe/"


@pytest.fixture(scope="module")
def moto():
    keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")
    saved = {k: os.environ.get(k) for k in keys}
    with moto_server() as url:
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
        try:
            boto3.client("s3").create_bucket(Bucket="athena-results")
            boto3.client("athena").create_work_group(Name="salespipe", Configuration={})
            yield url
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def _post(url: str, doc: dict) -> None:
    request = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request) as response:
        assert response.status in (200, 201)


def seed_result(moto: str, columns: list[tuple[str, str]], rows: list[list[str | None]]) -> None:
    """Queue what Athena returns for the next query: the header row, then the data rows."""
    def row(values):
        return {"Data": [{} if v is None else {"VarCharValue": v} for v in values]}
    _post(f"{moto}/moto-api/static/athena/query-results", {"results": [{
        "rows": [row([n for n, _ in columns])] + [row(r) for r in rows],
        "column_info": [{"Name": n, "Label": n, "Type": t, "Nullable": "UNKNOWN"} for n, t in columns],
    }]})


@pytest.fixture()
def polls(moto):
    """Each state change of a query needs ``times`` polls (QUEUED -> RUNNING -> SUCCEEDED)."""
    def set_polls(times: int) -> None:
        _post(f"{moto}/moto-api/state-manager/set-transition",
              {"model_name": "athena::execution", "transition": {"progression": "manual", "times": times}})
    yield set_polls
    _post(f"{moto}/moto-api/state-manager/unset-transition", {"model_name": "athena::execution"})


def engine(**overrides) -> AthenaQueryEngine:
    return AthenaQueryEngine(**{"database": "salespipe", "workgroup": "salespipe", "output_location": OUTPUT,
                                "poll_seconds": 0.01, "timeout_seconds": 30, **overrides})


def test_query_is_polled_until_it_succeeds_and_rows_are_typed(moto, polls):
    polls(2)  # two polls QUEUED, two RUNNING, then SUCCEEDED
    seed_result(moto, [("week_start", "date"), ("store_key", "integer"), ("rows", "bigint"),
                       ("amt", "decimal"), ("pct", "double"), ("promo", "boolean"), ("name", "varchar")],
                [["2024-01-07", "100", "12", "1234.50", "0.857142", "true", "Store 100"],
                 ["2024-01-14", "200", "3", None, None, "false", None]])
    sql = "SELECT week_start, store_key, count(*) AS rows FROM weekly_sales_inventory GROUP BY 1, 2"

    rows = engine().fetch(sql)

    assert rows == [
        (dt.date(2024, 1, 7), 100, 12, Decimal("1234.50"), 0.857142, True, "Store 100"),
        (dt.date(2024, 1, 14), 200, 3, None, None, False, None),
    ]
    athena = boto3.client("athena")
    (query_id,) = athena.list_query_executions(WorkGroup="salespipe")["QueryExecutionIds"][-1:]
    execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert execution["Query"] == sql
    assert execution["QueryExecutionContext"] == {"Database": "salespipe"}
    assert execution["ResultConfiguration"]["OutputLocation"].startswith(OUTPUT)
    assert execution["Status"]["State"] == "SUCCEEDED"


def test_parameters_are_sent_as_sql_literals(moto, polls):
    polls(1)
    seed_result(moto, [("n", "bigint")], [["5"]])
    assert engine().fetch("SELECT count(*) FROM t WHERE week_start = CAST(? AS date) AND store_key = ?",
                          [dt.date(2024, 1, 7), 100]) == [(5,)]
    athena = boto3.client("athena")
    query_id = athena.list_query_executions(WorkGroup="salespipe")["QueryExecutionIds"][-1]
    execution = athena.get_query_execution(QueryExecutionId=query_id)["QueryExecution"]
    assert execution["ExecutionParameters"] == ["'2024-01-07'", "100"]


def test_a_query_still_running_at_the_timeout_is_stopped(moto, polls):
    polls(10**6)  # never leaves QUEUED
    slow = engine(timeout_seconds=0.3)

    with pytest.raises(AthenaQueryTimedOut, match=r"still QUEUED after 0.3 s; stopped -- SQL: SELECT 1") as err:
        slow.fetch("SELECT 1")

    state = boto3.client("athena").get_query_execution(QueryExecutionId=err.value.query_id)
    assert state["QueryExecution"]["Status"]["State"] == "CANCELLED"


def test_a_query_cancelled_by_someone_else_raises(moto, polls):
    polls(10**6)
    e = engine()
    athena = boto3.client("athena")
    query_id = e.start(athena, "SELECT 2")
    athena.stop_query_execution(QueryExecutionId=query_id)  # e.g. an operator in the console

    with pytest.raises(AthenaQueryCancelled, match=f"Athena query {query_id} CANCELLED"):
        e.wait(athena, query_id, "SELECT 2")


def _stubbed(responses: list[tuple[str, dict, dict]]):
    client = boto3.client("athena", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")  # never called
    stub = Stubber(client)
    for method, response, expected in responses:
        stub.add_response(method, response, expected)
    stub.activate()
    return client, stub


def _status(state: str, reason: str | None = None) -> dict:
    status = {"State": state, **({"StateChangeReason": reason} if reason else {})}
    return {"QueryExecution": {"QueryExecutionId": "q1", "StatementType": "DML", "Status": status}}


def test_a_failed_query_raises_with_athenas_reason():
    client, stub = _stubbed([
        ("get_query_execution", _status("RUNNING"), {"QueryExecutionId": "q1"}),
        ("get_query_execution", _status("FAILED", "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"),
         {"QueryExecutionId": "q1"}),
    ])
    with pytest.raises(AthenaQueryFailed, match="q1 FAILED: COLUMN_NOT_FOUND.*-- SQL: SELECT nope FROM t"):
        engine().wait(client, "q1", "SELECT nope\n  FROM t")
    stub.assert_no_pending_responses()


def test_results_over_several_pages_keep_every_row_and_drop_only_the_header():
    columns = [{"Name": "store_key", "Type": "integer"}, {"Name": "amt", "Type": "decimal"}]

    def page(rows, token=None):
        result = {"ResultSet": {"Rows": [{"Data": [{"VarCharValue": v} for v in r]} for r in rows],
                                "ResultSetMetadata": {"ColumnInfo": columns}}}
        return {**result, **({"NextToken": token} if token else {})}

    client, stub = _stubbed([
        ("get_query_results", page([["store_key", "amt"], ["1", "1.00"], ["2", "2.00"]], "t2"),
         {"QueryExecutionId": "q1"}),
        ("get_query_results", page([["3", "3.00"]], "t3"), {"QueryExecutionId": "q1", "NextToken": "t2"}),
        ("get_query_results", page([["4", "4.00"]]), {"QueryExecutionId": "q1", "NextToken": "t3"}),
    ])
    rows = engine().rows(client, "q1", {"StatementType": "DML"})
    assert rows == [(1, Decimal("1.00")), (2, Decimal("2.00")), (3, Decimal("3.00")), (4, Decimal("4.00"))]
    stub.assert_no_pending_responses()


def test_a_ddl_statement_has_no_header_row_to_drop(moto, polls):
    polls(1)
    _post(f"{moto}/moto-api/static/athena/query-results", {"results": [{
        "rows": [{"Data": [{"VarCharValue": "store"}]}, {"Data": [{"VarCharValue": "weekly_sales_inventory"}]}],
        "column_info": [{"Name": "tab_name", "Label": "tab_name", "Type": "string"}]}]})
    assert engine().fetch("SHOW TABLES") == [("store",), ("weekly_sales_inventory",)]


def test_parquet_rows_of_an_s3_directory_come_from_the_footers(moto):
    """The staging reconciliation check in AWS: rows of a partition directory on S3."""
    fs = LakeFS("s3://athena-results/staged/sales/business_date=2024-01-08")
    for name, n in (("part-00000.parquet", 3), ("part-00001.parquet", 4)):
        with fs.fs.open_output_stream(fs.path(name)) as f:
            pq.write_table(pa.table({"trans_id": list(range(n))}), f)
    fs.write_json("_manifest.json", {"row_count": 7})
    assert engine().parquet_rows("s3a://athena-results/staged/sales/business_date=2024-01-08") == 7
    assert engine().parquet_rows("s3a://athena-results/staged/sales/business_date=2024-01-09") == 0
