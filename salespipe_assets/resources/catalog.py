"""The catalog: curated datasets as queryable tables.

``Catalog`` is what the catalog assets call; ``DuckDBCatalog`` (local, the stand-in for
Glue) defines DuckDB views over the lake's Parquet, so ``salespipe query`` and the
checks read the lake through table names. The file is opened only under its lock
(``query.locked_connection``): a ``salespipe query`` reads a copy and never blocks a run.
"""

from __future__ import annotations

from glob import glob

import dagster as dg

from salespipe_assets.resources.lake import Lake
from salespipe_assets.resources.query import locked_connection
from salespipe_assets.sql import date_literal, identifier, literal
from spark_steps.contract import CONTRACT, DAILY_TABLES, SNAPSHOT_TABLES, checked_date
from spark_steps.fact import FACT_COLUMNS

FACT_TABLE = "weekly_sales_inventory"
DAILY_CATALOG_TABLES = [*SNAPSHOT_TABLES, *[f"staged_{t}" for t in DAILY_TABLES],
                        *[f"rejects_{t}" for t in CONTRACT]]


class Catalog(dg.ConfigurableResource):
    def register_fact_week(self, lake: Lake, week: str) -> dict:
        """Make the week's fact partition visible; return {"rows_in_week", "rows_total"}."""
        raise NotImplementedError

    def register_tables(self, lake: Lake, tables: list[str]) -> dict[str, int]:
        """Register (create or update) these tables; return rows visible per table."""
        raise NotImplementedError


def _sources(root: str) -> dict[str, tuple[str, str]]:
    """table -> (Parquet glob, SELECT list)."""
    sources = {FACT_TABLE: (f"{root}/curated/{FACT_TABLE}/week_start=*/*.parquet", ", ".join(FACT_COLUMNS))}
    for t in SNAPSHOT_TABLES:
        sources[t] = (f"{root}/curated/{t}/*.parquet", ", ".join(CONTRACT[t].column_names))
    for t in DAILY_TABLES:
        sources[f"staged_{t}"] = (f"{root}/staged/{t}/business_date=*/*.parquet", "*")
    for t in CONTRACT:
        sources[f"rejects_{t}"] = (f"{root}/rejects/{t}/business_date=*/*.parquet", "*")
    return sources


class DuckDBCatalog(Catalog):
    database: str

    def _refresh(self, con, lake: Lake, tables: list[str]) -> dict[str, int]:
        visible = {}
        for table, (pattern, columns) in _sources(lake.fs.path("")).items():
            if table not in tables or not glob(pattern):
                continue  # a view over no files cannot be defined; it appears with its first data
            hive = ", hive_partitioning = true" if "=*" in pattern else ""
            # columns: the contract's column names (constants) or *; the glob is a literal()
            con.execute(f"CREATE OR REPLACE VIEW {identifier(table)} AS SELECT {columns} "  # nosec B608  # see above
                        f"FROM read_parquet({literal(pattern)}{hive})")
            count = f"SELECT count(*) FROM {identifier(table)}"  # nosec B608  # identifier()
            visible[table] = con.execute(count).fetchone()[0]
        return visible

    def register_tables(self, lake: Lake, tables: list[str]) -> dict[str, int]:
        with locked_connection(self.database) as con:
            return self._refresh(con, lake, tables)

    def register_fact_week(self, lake: Lake, week: str) -> dict:
        checked_date(week, "week")
        with locked_connection(self.database) as con:
            total = self._refresh(con, lake, [FACT_TABLE]).get(FACT_TABLE, 0)
            count = (f"SELECT count(*) FROM {identifier(FACT_TABLE)} "  # nosec B608  # identifier/date_literal
                     f"WHERE week_start = {date_literal(week)}")
            in_week = con.execute(count).fetchone()[0] if total else 0
        return {"rows_in_week": in_week, "rows_total": total}
