"""The Glue catalog against a moto server endpoint standing in for AWS Glue and S3.

The lake is real: hand-written landing CSVs are staged and the fact built by the real Spark
steps (local mode), then the lake is copied into a moto S3 bucket, so the column types
are those of the Parquet Spark actually writes. Expected types come from the data contract
(SPEC, ``FACT_SCHEMA``), expected row counts from DuckDB reading the same Parquet.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import boto3
import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyarrow import fs as pafs

from salespipe_assets.resources.glue import GlueCatalog
from salespipe_assets.resources.lake import LocalLake
from spark_steps import build_weekly_fact, stage_file
from spark_steps.contract import CONTRACT
from spark_steps.fact import FACT_SCHEMA
from tests.conftest import inventory_row, sales_row, write_landing
from tests.servers import moto_server

WEEK1, WEEK2 = "2024-01-07", "2024-01-14"
FACT = "curated/weekly_sales_inventory"
LINEAGE = [("source_file", "string"), ("source_line", "bigint")]
DIMENSION_ROWS = {
    "store": ["100,S100,Store 100,1 Main St,Toronto,East,CA,Canada,M5V,Ontario,ON,01,Large,true,1250.500,"
              "1,Toronto,11,Downtown,43.651070,-79.347015",
              "200,S200,Store 200,,Ottawa,East,CA,Canada,K1P,Ontario,ON,02,Small,false,,1,Toronto,12,Ottawa,,"],
    "product": ["10,Widget,1.00,0.50,Acme,1,Active,5,Tools,51,Hand tools",
                "20,Gadget,,2.25,Acme,2,Inactive,5,Tools,52,Power tools"],
    "calendar": ["2024-01-08,Gregorian,1,Monday,2024,2,202402,1,202401,1,20241"],
}


def build_small_lake(spark, lake: Path) -> Path:
    """Two days in two weeks through the real staging and fact steps: staged, rejects,
    curated dimensions and two fact partitions."""
    days = {
        "2024-01-08": ([sales_row(1, prod=10, store=100, day="2024-01-08", qty="2.00", amt="10.00"),
                        sales_row(2, prod=20, store=200, day="2024-01-08", qty="1.00", amt="4.50"),
                        sales_row(3, day="2024-01-08", qty="-1.00")],  # rejected: negative quantity
                       [inventory_row("2024-01-08", 100, 10, on_hand="1.00"),
                        inventory_row("2024-01-08", 200, 30, on_hand="7.00", oos="1")]),
        "2024-01-15": ([sales_row(4, prod=10, store=100, day="2024-01-15", qty="3.00", amt="15.00")],
                       [inventory_row("2024-01-15", 100, 10, on_hand="9.00")]),
    }
    for day, (sales, inventory) in days.items():
        for table, rows in (("sales", sales), ("inventory", inventory)):
            source = write_landing(lake, table, day, rows)
            stage_file.run(spark, lake=str(lake), table=table, source=source, business_date=day, run_id="t")
    for table, rows in DIMENSION_ROWS.items():
        source = write_landing(lake, table, "2024-01-08", rows)
        stage_file.run(spark, lake=str(lake), table=table, source=source, business_date="2024-01-08", run_id="t")
    for week in (WEEK1, WEEK2):
        build_weekly_fact.run(spark, lake=str(lake), week_start=week, run_id="t")
    return lake


def small_lake(spark, tmp_path_factory) -> Path:
    """``build_small_lake`` once per test session (the Snowflake tests read the same lake);
    tests that change a lake work on a copy."""
    lake = tmp_path_factory.getbasetemp() / "small_lake"
    if not (lake / "_built").exists():
        build_small_lake(spark, lake)
        (lake / "_built").touch()
    return lake


def parquet_rows(pattern: str) -> int:
    return duckdb.sql(f"SELECT count(*) FROM read_parquet('{pattern}')").fetchall()[0][0]


@pytest.fixture(scope="module")
def aws():
    """A moto server for Glue and S3; the AWS environment points every client at it."""
    keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_DEFAULT_REGION")
    saved = {k: os.environ.get(k) for k in keys}
    with moto_server() as url:
        os.environ.update(AWS_ENDPOINT_URL=url, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                          AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1")
        try:
            boto3.client("s3").create_bucket(Bucket="lake")
            yield url
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


@pytest.fixture(scope="module")
def local_lake(spark, tmp_path_factory) -> Path:
    return small_lake(spark, tmp_path_factory)


@pytest.fixture()
def s3_lake(aws, local_lake, request) -> LocalLake:
    """The local lake copied to its own prefix of the moto bucket (``LocalLake`` only adds
    landing-zone listing to ``Lake``; the catalog uses the lake's LakeFS, S3 here)."""
    prefix = f"lake/{request.node.name}"
    s3 = LocalLake(root=f"s3://{prefix}").fs.fs
    pafs.copy_files(str(local_lake), prefix, destination_filesystem=s3)
    return LocalLake(root=f"s3://{prefix}")


def _glue():
    return boto3.client("glue")


def _partitions(db: str, table: str) -> dict[str, dict]:
    pages = _glue().get_paginator("get_partitions").paginate(DatabaseName=db, TableName=table)
    return {p["Values"][0]: p for page in pages for p in page["Partitions"]}


def _columns(table: dict) -> list[tuple[str, str]]:
    return [(c["Name"], c["Type"]) for c in table["StorageDescriptor"]["Columns"]]


def test_fact_week_creates_database_table_typed_from_parquet_and_partitions(s3_lake, local_lake):
    catalog = GlueCatalog(database="sales_a")
    visible = catalog.register_fact_week(s3_lake, WEEK1)

    assert _glue().get_database(Name="sales_a")["Database"]["Name"] == "sales_a"
    table = _glue().get_table(DatabaseName="sales_a", Name="weekly_sales_inventory")["Table"]
    assert _columns(table) == [(n, t) for n, t in FACT_SCHEMA if n != "week_start"]
    assert table["PartitionKeys"] == [{"Name": "week_start", "Type": "date"}]
    assert table["StorageDescriptor"]["Location"] == f"s3://{s3_lake.root[5:]}/{FACT}/"
    assert table["TableType"] == "EXTERNAL_TABLE"
    assert "ParquetHiveSerDe" in table["StorageDescriptor"]["SerdeInfo"]["SerializationLibrary"]

    parts = _partitions("sales_a", "weekly_sales_inventory")
    assert sorted(parts) == [WEEK1, WEEK2]
    assert parts[WEEK2]["StorageDescriptor"]["Location"] == f"s3://{s3_lake.root[5:]}/{FACT}/week_start={WEEK2}/"
    week1 = parquet_rows(f"{local_lake}/{FACT}/week_start={WEEK1}/*.parquet")
    week2 = parquet_rows(f"{local_lake}/{FACT}/week_start={WEEK2}/*.parquet")
    assert week1 > 0 and week2 > 0
    assert visible["rows_in_week"] == week1
    assert visible["rows_total"] == week1 + week2


def test_registering_again_changes_nothing(s3_lake):
    catalog = GlueCatalog(database="sales_b")
    catalog.register_fact_week(s3_lake, WEEK1)
    before = _glue().get_table(DatabaseName="sales_b", Name="weekly_sales_inventory")["Table"]
    versions = len(_glue().get_table_versions(DatabaseName="sales_b", TableName="weekly_sales_inventory")["TableVersions"])

    again = catalog.register_fact_week(s3_lake, WEEK1)

    after = _glue().get_table(DatabaseName="sales_b", Name="weekly_sales_inventory")["Table"]
    assert again["table_updated"] is False
    assert again["partitions_added"] == again["partitions_updated"] == 0
    assert _columns(after) == _columns(before)
    assert len(_glue().get_table_versions(DatabaseName="sales_b", TableName="weekly_sales_inventory")
               ["TableVersions"]) == versions
    assert sorted(_partitions("sales_b", "weekly_sales_inventory")) == [WEEK1, WEEK2]


def test_many_new_weeks_are_added_in_batches(s3_lake):
    """101 more published weeks: more than one BatchCreatePartition call (100 at most each)."""
    fs = s3_lake.fs
    weeks = [f"2021-{m:02d}-{d:02d}" for m in range(1, 13) for d in range(1, 29)][:101]  # any dates will do
    for w in weeks:
        pafs.copy_files(fs.path(f"{FACT}/week_start={WEEK1}"), fs.path(f"{FACT}/week_start={w}"),
                        source_filesystem=fs.fs, destination_filesystem=fs.fs)
    batches = []

    def record(params, **_):
        batches.append(len(params["PartitionInputList"]))

    events = boto3._get_default_session().events  # clients created afterwards inherit the hook
    events.register("provide-client-params.glue.BatchCreatePartition", record)
    try:
        visible = GlueCatalog(database="sales_c").register_fact_week(s3_lake, WEEK2)
    finally:
        events.unregister("provide-client-params.glue.BatchCreatePartition", record)

    assert batches == [100, 3]
    assert visible["partitions_added"] == 103
    assert len(_partitions("sales_c", "weekly_sales_inventory")) == 103


def test_unpublished_partition_is_not_registered(s3_lake):
    """A partition directory without its success marker (a publish in progress) stays out."""
    fs = s3_lake.fs
    fs.fs.delete_file(fs.path(f"{FACT}/week_start={WEEK2}/_SUCCESS"))
    GlueCatalog(database="sales_d").register_fact_week(s3_lake, WEEK1)
    assert sorted(_partitions("sales_d", "weekly_sales_inventory")) == [WEEK1]


def _add_column_to_week(fs, week: str, new_week: str, column: str, values: pa.Array) -> None:
    """Publish ``new_week`` as a copy of ``week`` with one more column (a contract change)."""
    src = f"{FACT}/week_start={week}"
    name = next(n for n in fs.list_dir(src) if n.endswith(".parquet"))
    with fs.fs.open_input_file(fs.path(f"{src}/{name}")) as f:
        table = pq.read_table(f)
    table = table.append_column(column, values[: table.num_rows])
    dst = f"{FACT}/week_start={new_week}"
    with fs.fs.open_output_stream(fs.path(f"{dst}/part-00000.parquet")) as f:
        pq.write_table(table, f)
    fs.write_bytes(f"{dst}/_SUCCESS", b"")


def test_added_column_updates_the_table_without_dropping_any(s3_lake):
    catalog = GlueCatalog(database="sales_e")
    catalog.register_fact_week(s3_lake, WEEK1)
    original = _columns(_glue().get_table(DatabaseName="sales_e", Name="weekly_sales_inventory")["Table"])

    _add_column_to_week(s3_lake.fs, WEEK2, "2024-01-21", "promo_sales_amt",
                        pa.array([Decimal("1.50")] * 100, pa.decimal128(38, 2)))
    visible = catalog.register_fact_week(s3_lake, "2024-01-21")

    table = _glue().get_table(DatabaseName="sales_e", Name="weekly_sales_inventory")["Table"]
    assert _columns(table) == original + [("promo_sales_amt", "decimal(38,2)")]
    assert visible["table_updated"] is True
    parts = _partitions("sales_e", "weekly_sales_inventory")
    assert sorted(parts) == [WEEK1, WEEK2, "2024-01-21"]
    # every partition describes its data with the table's columns: old ones were updated
    assert all(_columns(p) == _columns(table) for p in parts.values())

    # the older weeks' Parquet lacks the column; registering them again drops nothing
    catalog.register_fact_week(s3_lake, WEEK1)
    assert _columns(_glue().get_table(DatabaseName="sales_e", Name="weekly_sales_inventory")["Table"]) \
        == original + [("promo_sales_amt", "decimal(38,2)")]


def test_a_changed_column_type_is_refused_and_the_table_kept(s3_lake):
    catalog = GlueCatalog(database="sales_f")
    catalog.register_fact_week(s3_lake, WEEK1)
    before = _columns(_glue().get_table(DatabaseName="sales_f", Name="weekly_sales_inventory")["Table"])
    fs = s3_lake.fs
    src = f"{FACT}/week_start={WEEK2}"
    name = next(n for n in fs.list_dir(src) if n.endswith(".parquet"))
    with fs.fs.open_input_file(fs.path(f"{src}/{name}")) as f:
        table = pq.read_table(f)
    i = table.schema.get_field_index("store_key")
    table = table.set_column(i, "store_key", table["store_key"].cast(pa.int64()))
    with fs.fs.open_output_stream(fs.path(f"{src}/{name}")) as f:
        pq.write_table(table, f)

    with pytest.raises(ValueError, match="store_key is int in the catalog but bigint"):
        catalog.register_fact_week(s3_lake, WEEK2)
    assert _columns(_glue().get_table(DatabaseName="sales_f", Name="weekly_sales_inventory")["Table"]) == before


def test_republished_week_updates_its_partition_row_count(s3_lake):
    catalog = GlueCatalog(database="sales_g")
    first = catalog.register_fact_week(s3_lake, WEEK1)
    fs = s3_lake.fs
    src = f"{FACT}/week_start={WEEK1}"
    name = next(n for n in fs.list_dir(src) if n.endswith(".parquet"))
    with fs.fs.open_input_file(fs.path(f"{src}/{name}")) as f:
        table = pq.read_table(f)
    fs.fs.delete_file(fs.path(f"{src}/{name}"))
    with fs.fs.open_output_stream(fs.path(f"{src}/part-republished.parquet")) as f:
        pq.write_table(table.slice(0, 1), f)

    again = catalog.register_fact_week(s3_lake, WEEK1)

    assert first["rows_in_week"] > 1
    assert again["rows_in_week"] == 1
    assert again["partitions_updated"] == 1 and again["partitions_added"] == 0
    assert _partitions("sales_g", "weekly_sales_inventory")[WEEK1]["Parameters"]["numRows"] == "1"


def test_dimensions_staged_and_rejects_tables(s3_lake, local_lake):
    tables = ["store", "product", "calendar", "staged_sales", "staged_inventory", "rejects_sales",
              "rejects_inventory", "rejects_store"]
    visible = GlueCatalog(database="sales_h").register_tables(s3_lake, tables)

    for dim in ("store", "product", "calendar"):
        table = _glue().get_table(DatabaseName="sales_h", Name=dim)["Table"]
        # the contract's types are written in Hive's names already (string, int, decimal(p,s), ...);
        # staging adds the lineage of each row
        assert _columns(table) == [(c.name, c.type) for c in CONTRACT[dim].columns] + LINEAGE
        assert table["PartitionKeys"] == []
        assert visible[dim] == parquet_rows(f"{local_lake}/curated/{dim}/*.parquet") == len(DIMENSION_ROWS[dim])

    staged = _glue().get_table(DatabaseName="sales_h", Name="staged_sales")["Table"]
    assert staged["PartitionKeys"] == [{"Name": "business_date", "Type": "date"}]
    assert _columns(staged) == [(c.name, c.type) for c in CONTRACT["sales"].columns] + LINEAGE
    assert sorted(_partitions("sales_h", "staged_sales")) == ["2024-01-08", "2024-01-15"]
    assert visible["staged_sales"] == parquet_rows(f"{local_lake}/staged/sales/*/*.parquet") == 3
    assert visible["rejects_sales"] == parquet_rows(f"{local_lake}/rejects/sales/*/*.parquet") == 1
    # a rejects dataset with no rejected row still has an (empty) published Parquet file
    assert visible["rejects_store"] == 0
    assert visible == GlueCatalog(database="sales_h").register_tables(s3_lake, tables)
