"""Everything built from input into SQL text or lake paths is validated or quoted."""

import duckdb
import pytest

from salespipe_assets.resources.catalog import DuckDBCatalog
from salespipe_assets.resources.lake import LocalLake
from salespipe_assets.resources.warehouse import DuckDBWarehouse
from salespipe_assets.sql import date_literal, identifier, literal
from spark_steps import build_weekly_fact, stage_file


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
])
def test_stage_step_refuses_paths_outside_the_landing_zone(spark, tmp_path, table, source, day):
    with pytest.raises((ValueError, KeyError)):
        stage_file.run(spark, lake=str(tmp_path), table=table, source=source, business_date=day)
    assert not (tmp_path / "staged").exists() and not (tmp_path / "quarantine").exists()


@pytest.mark.parametrize("week", ["2024-01-08", "../2024-01-07", "2024-1-7", "2024-01-07/.."])
def test_fact_step_refuses_anything_but_a_sunday(spark, tmp_path, week):
    with pytest.raises(ValueError):
        build_weekly_fact.run(spark, lake=str(tmp_path), week_start=week)
