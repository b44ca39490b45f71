"""The warehouse: loaded by the warehouse engine reading the lake's Parquet itself.

``Warehouse`` is what the warehouse assets call; ``DuckDBWarehouse`` is the local
default. The fact is replaced one week at a time inside a transaction, so a reload never
duplicates rows and a failed load leaves the previous week in place. Two runs of ours
wait for each other on the file's lock (``query.locked_connection``); another reader
(Superset, a DuckDB shell) that holds the file is what the retry policy is for.
"""

from __future__ import annotations

import dagster as dg

from salespipe_assets.resources.lake import Lake
from salespipe_assets.resources.query import locked_connection
from salespipe_assets.sql import date_literal, identifier, literal
from spark_steps.contract import CONTRACT, checked_date
from spark_steps.fact import FACT_SCHEMA

FACT_TABLE = "weekly_sales_inventory"


def fact_partition(week: str) -> str:
    return f"curated/{FACT_TABLE}/week_start={checked_date(week, 'week')}"


class Warehouse(dg.ConfigurableResource):
    def load_fact_week(self, lake: Lake, week: str) -> dict:
        """Replace the week's rows from its curated partition; return {"rows": n, ...}."""
        raise NotImplementedError

    def replace_dimension(self, lake: Lake, table: str) -> dict:
        """Replace a dimension table from its curated snapshot; return {"rows": n, ...}."""
        raise NotImplementedError


class DuckDBWarehouse(Warehouse):
    database: str

    def load_fact_week(self, lake: Lake, week: str) -> dict:
        parquet = literal(lake.fs.path(fact_partition(week)) + "/*.parquet")
        columns = ", ".join(identifier(n) for n, _ in FACT_SCHEMA if n != "week_start")
        ddl = ", ".join(f"{identifier(n)} {t}" for n, t in FACT_SCHEMA)
        week_sql = date_literal(week)
        with locked_connection(self.database) as con:
            con.execute(f"CREATE TABLE IF NOT EXISTS {identifier(FACT_TABLE)} ({ddl})")
            con.execute("BEGIN TRANSACTION")
            try:
                # SQL here: identifier() names, the date_literal() week, the literal() Parquet glob
                con.execute(f"DELETE FROM {identifier(FACT_TABLE)} "  # nosec B608  # see above
                            f"WHERE week_start = {week_sql}")
                con.execute(f"INSERT INTO {identifier(FACT_TABLE)} "  # nosec B608  # see above
                            f"SELECT {week_sql} AS week_start, {columns} FROM read_parquet({parquet})")
                con.execute("COMMIT")
            except Exception:
                con.execute("ROLLBACK")
                raise
            rows = con.execute(
                f"SELECT count(*) FROM {identifier(FACT_TABLE)} WHERE week_start = {week_sql}"  # nosec B608  # as above
            ).fetchone()[0]
        return {"rows": rows, "table": FACT_TABLE}

    def replace_dimension(self, lake: Lake, table: str) -> dict:
        parquet = literal(lake.fs.path(f"curated/{table}") + "/*.parquet")
        columns = ", ".join(identifier(c) for c in CONTRACT[table].column_names)
        with locked_connection(self.database) as con:
            con.execute(f"CREATE OR REPLACE TABLE {identifier(table)} "  # nosec B608  # identifier()s, literal() glob
                        f"AS SELECT {columns} FROM read_parquet({parquet})")
            rows = con.execute(f"SELECT count(*) FROM {identifier(table)}").fetchone()[0]  # nosec B608  # identifier()
        return {"rows": rows, "table": table}
