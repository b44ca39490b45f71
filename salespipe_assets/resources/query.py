"""The query engine the asset checks use: DuckDB locally (Athena in AWS)."""

from __future__ import annotations

import duckdb
import dagster as dg


class QueryEngine(dg.ConfigurableResource):
    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        raise NotImplementedError

    def parquet_rows(self, uri: str) -> int:
        """Rows in the Parquet files of a dataset directory."""
        raise NotImplementedError


class DuckDBQueryEngine(QueryEngine):
    """DuckDB over the local catalog's views (or in memory), reading the lake's Parquet."""

    database: str = ""

    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(self.database or ":memory:") as con:
            return con.execute(sql, params or []).fetchall()

    def parquet_rows(self, uri: str) -> int:
        path = uri.removeprefix("file://").rstrip("/")
        return self.fetch("SELECT count(*) FROM read_parquet(?)", [f"{path}/*.parquet"])[0][0]
