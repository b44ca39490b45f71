"""Everything built from input into SQL text or lake paths is validated or quoted."""

import shutil

import dagster as dg
import duckdb
import pytest
from dagster_aws.s3 import S3Resource
from dagster_snowflake import SnowflakeResource

from salespipe_assets.assets.dashboards import SupersetBI
from salespipe_assets.assets.source_export import SnowflakeSourceExport
from salespipe_assets.bi import SupersetClient, http_url
from salespipe_assets.resources import glue
from salespipe_assets.resources.athena import AthenaQueryEngine
from salespipe_assets.resources.catalog import DuckDBCatalog
from salespipe_assets.resources.glue import GlueCatalog
from salespipe_assets.resources.io_manager import LakeIOManager
from salespipe_assets.resources.lake import LocalLake
from salespipe_assets.resources.s3_lake import S3Lake
from salespipe_assets.resources.snowflake_warehouse import SnowflakeWarehouse
from salespipe_assets.resources.warehouse import DuckDBWarehouse, fact_partition
from salespipe_assets.sql import date_literal, identifier, literal
from salespipe_assets.triggers.lambda_handler import DagsterGraphQL
from spark_steps import build_weekly_fact, stage_file
from spark_steps.contract import LANDING_NAME
from spark_steps.lakefs import LakeFS


@pytest.mark.parametrize("name", ["x; DROP TABLE store", 'a"b', "1abc", "", "store --"])
def test_identifiers_that_are_not_plain_names_are_refused(name):
    with pytest.raises(ValueError):
        identifier(name)


def test_literals_are_quoted_so_input_cannot_end_the_string():
    with duckdb.connect() as con:
        assert con.execute(f"SELECT {literal(chr(39) + '; DROP TABLE x; --')}").fetchone()[0] == "'; DROP TABLE x; --"


@pytest.mark.parametrize("value", ["2024-01-07' OR 1=1 --", "2024-13-01", "yesterday", "2024-01-07; DROP"])
def test_dates_must_be_dates(value):
    with pytest.raises(ValueError):
        date_literal(value)


def test_warehouse_refuses_a_week_that_is_not_a_date(tmp_path):
    wh = DuckDBWarehouse(database=str(tmp_path / "wh.duckdb"))
    with pytest.raises(ValueError):
        wh.load_fact_week(LocalLake(root=str(tmp_path)), "2024-01-07' OR '1'='1")


def test_a_lake_path_with_a_quote_is_read_safely(tmp_path, spark):
    """A directory name with a quote ends up inside SQL string literals (DuckDB views)."""
    from tests.conftest import inventory_row, sales_row, write_landing

    lake = tmp_path / "o'brien lake"
    for table, row in (("sales", sales_row(1)), ("inventory", inventory_row())):
        source = write_landing(lake, table, "2024-01-08", [row])
        stage_file.run(spark, lake=str(lake), table=table, source=source, business_date="2024-01-08")
    catalog = DuckDBCatalog(database=str(tmp_path / "catalog.duckdb"))
    visible = catalog.register_tables(LocalLake(root=str(lake)), ["staged_sales", "staged_inventory"])
    assert visible == {"staged_sales": 1, "staged_inventory": 1}


@pytest.mark.parametrize("table, source, day", [
    ("sales", "raw/../../etc/passwd", "2024-01-08"),
    ("sales", "/etc/passwd", "2024-01-08"),
    ("sales", "raw/sub/sales_2024-01-08.csv", "2024-01-08"),
    ("sales", "raw/inventory_2024-01-08.csv", "2024-01-08"),
    ("sales", "raw/sales_2024-01-08.csv", "2024-01-08/../../x"),
    ("sales; rm -rf", "raw/sales_2024-01-08.csv", "2024-01-08"),
    ("sales", "raw/../curated/x", "2024-01-08"),
    ("sales", "raw/sales_2024-01-08.csv/../../etc", "2024-01-08"),
    ("sales", "raw/sales_2024-01-08.csv\n", "2024-01-08"),  # a regex "$" would let a newline through
    ("sales", "raw/sales_2024-01-08.csv", "2024-01-08\n"),
])
def test_stage_step_refuses_paths_outside_the_landing_zone(spark, tmp_path, table, source, day):
    with pytest.raises((ValueError, KeyError)):
        stage_file.run(spark, lake=str(tmp_path), table=table, source=source, business_date=day)
    assert not (tmp_path / "staged").exists() and not (tmp_path / "quarantine").exists()


@pytest.mark.parametrize("week", ["2024-01-08", "../2024-01-07", "2024-1-7", "2024-01-07/.."])
def test_fact_step_refuses_anything_but_a_sunday(spark, tmp_path, week):
    with pytest.raises(ValueError):
        build_weekly_fact.run(spark, lake=str(tmp_path), week_start=week)


# -- paths: nothing built from input leaves the lake ----------------------------------------------

TRAVERSALS = ["raw/../curated/x", "raw/../../etc/passwd", "../outside", "curated/store/../../../x"]


@pytest.mark.parametrize("rel", TRAVERSALS)
def test_lake_paths_and_s3_keys_never_climb_out_of_the_lake(tmp_path, rel):
    with pytest.raises(ValueError, match="inside the lake"):
        LakeFS(str(tmp_path)).path(rel)
    with pytest.raises(ValueError, match="inside the lake"):
        LakeFS("s3://bucket/prefix").path(rel)
    s3_lake = S3Lake(root="s3://bucket/prefix", s3=S3Resource(region_name="us-east-1"))
    with pytest.raises(ValueError, match="inside the lake"):  # refused before any S3 request
        s3_lake.read_manifest(rel)
    with pytest.raises(ValueError, match="inside the lake"):
        s3_lake.quarantine(rel, "bad")


def test_quarantine_of_a_climbing_name_moves_nothing(tmp_path):
    (tmp_path / "curated" / "store").mkdir(parents=True)
    data = tmp_path / "curated" / "store" / "part-00000.parquet"
    data.write_bytes(b"PAR1")
    with pytest.raises(ValueError):
        LocalLake(root=str(tmp_path)).quarantine("raw/../curated/store/part-00000.parquet", "bad")
    assert data.exists() and not (tmp_path / "quarantine").exists()


def test_landing_names_are_matched_whole():
    assert LANDING_NAME.match("sales_2024-01-08.csv.gz")
    for name in ("sales_2024-01-08.csv\n", "sales_2024-01-08.csv.gz\n", "sales_2024-01-08.csv/../x"):
        assert not LANDING_NAME.match(name), name


# -- partition keys: only real YYYY-MM-DD dates become paths, SQL or catalog entries ------------------

NOT_DATES = ["2024-01-07' OR '1'='1", "../../etc", "2024-01-07/../..", "20240107", "2024-02-30", "2024-01-07\n"]


@pytest.mark.parametrize("key", NOT_DATES)
def test_partition_keys_that_are_not_dates_never_become_paths(tmp_path, key):
    with pytest.raises(ValueError):
        fact_partition(key)
    with pytest.raises(ValueError):
        build_weekly_fact.partition_path(key)
    with pytest.raises(ValueError):
        stage_file.output_path("sales", key)
    with pytest.raises(ValueError):
        stage_file.output_path("store", key)  # a snapshot's path has no date, but the key is still checked
    with pytest.raises(ValueError):
        stage_file.rejects_path("sales", key)
    io = LakeIOManager(lake=LocalLake(root=str(tmp_path)))
    with pytest.raises(ValueError):
        io.dataset_rel(dg.AssetKey("staged_sales"), key)


def _snowflake() -> SnowflakeResource:
    """Never connected to: every refusal below happens before a connection is opened."""
    return SnowflakeResource(account="nowhere", user="nobody", password="unused")


@pytest.mark.parametrize("key", NOT_DATES)
def test_partition_keys_that_are_not_dates_are_refused_by_catalog_and_warehouses(tmp_path, key):
    lake = LocalLake(root=str(tmp_path))
    for warehouse in (DuckDBWarehouse(database=str(tmp_path / "wh.duckdb")), SnowflakeWarehouse(snowflake=_snowflake())):
        with pytest.raises(ValueError):
            warehouse.load_fact_week(lake, key)
    for catalog in (DuckDBCatalog(database=str(tmp_path / "catalog.duckdb")), GlueCatalog(database="salespipe")):
        with pytest.raises(ValueError):
            catalog.register_fact_week(lake, key)
    export = SnowflakeSourceExport(snowflake=_snowflake(), source_database="SRC", source_schema="PUBLIC",
                                   storage_integration="salespipe_s3")
    for table in ("sales", "store"):  # the snapshot's query has no date filter, its file name has the date
        with pytest.raises(ValueError):
            export.unload_sql(table, key)


def test_glue_registers_only_partitions_named_by_a_date(spark, tmp_path):
    """A directory in the lake whose partition value is not a date is not catalogued."""
    from tests.conftest import inventory_row, sales_row, write_landing

    lake = tmp_path / "lake"
    for table, row in (("sales", sales_row(1)), ("inventory", inventory_row())):
        source = write_landing(lake, table, "2024-01-08", [row])
        stage_file.run(spark, lake=str(lake), table=table, source=source, business_date="2024-01-08")
    staged = lake / "staged" / "sales"
    shutil.copytree(staged / "business_date=2024-01-08", staged / "business_date=2024-01-08' OR '1'='1")
    files = glue._published_files(LocalLake(root=str(lake)), glue.datasets()["staged_sales"])
    assert list(files.by_partition) == ["2024-01-08"]


# -- names and URLs from configuration -----------------------------------------------------------

@pytest.mark.parametrize("name", ["sales pipe", "x; DROP DATABASE y", "db`", "", "a/b"])
def test_glue_and_athena_database_names_from_config_must_be_plain_names(tmp_path, name):
    with pytest.raises(ValueError):
        GlueCatalog(database=name).register_tables(LocalLake(root=str(tmp_path)), ["store"])
    with pytest.raises(ValueError):
        AthenaQueryEngine(database=name).fetch("SELECT 1")


@pytest.mark.parametrize("field, value", [("stage", "salespipe_lake; DROP TABLE store"),
                                          ("file_format", "fmt) --"), ("storage_integration", "int x")])
def test_snowflake_object_names_from_config_must_be_plain_names(tmp_path, field, value):
    export = SnowflakeSourceExport(snowflake=_snowflake(), source_database="SRC", source_schema="PUBLIC",
                                   **{"storage_integration": "salespipe_s3", field: value})
    with pytest.raises(ValueError):
        export.setup_sql(LocalLake(root="s3://bucket/lake"))
    warehouse = SnowflakeWarehouse(snowflake=_snowflake(), **{field: value})
    with pytest.raises(ValueError):  # before any statement runs: the cursor is never used
        warehouse.ensure_objects(None, LocalLake(root="s3://bucket/lake"), ["store"])


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://host/x", "127.0.0.1:8088", "http://"])
def test_only_http_urls_are_opened(url):
    with pytest.raises(ValueError):
        http_url(url)
    with pytest.raises(ValueError):
        SupersetBI(url=url).unreachable_reason()
    with pytest.raises(ValueError):
        SupersetClient(url, "admin", "admin", timeout=1)
    with pytest.raises(ValueError):
        DagsterGraphQL(url)
