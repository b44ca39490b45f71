"""The query engine the asset checks use: DuckDB locally (Athena in AWS), and the DuckDB
file access the local catalog, query engine and warehouse share.

DuckDB lets one process write a database file or many read it, never both: a reader that
holds the file open makes a writer in another process fail. So every process of ours
opens a DuckDB file only while it holds ``<file>.lock`` (an OS advisory lock, released
when the process ends, however it ends): runs wait for each other instead of failing,
and ``salespipe query`` holds the lock only to copy the catalog file, then reads the copy
(``snapshot``), so a query, however long, never holds up a run.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from filelock import FileLock, Timeout

# A writer waits this long for another process of ours to finish with the file (a run's
# refresh of the catalog views or a week's load takes seconds); then the step fails
# and its retry policy takes over.
WRITER_WAIT_SECONDS = 600.0


def lock_of(database: str) -> FileLock:
    return FileLock(f"{database}.lock")


@contextmanager
def locked_connection(database: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-write connection to a DuckDB file, open only while this process holds its lock."""
    lock = lock_of(database)
    try:
        lock.acquire(timeout=1)
    except Timeout:
        dg.get_dagster_logger().warning(
            f"waiting for {database}: another salespipe process is using it (up to {WRITER_WAIT_SECONDS:.0f} s)")
        lock.acquire(timeout=WRITER_WAIT_SECONDS)
    try:
        with duckdb.connect(database) as con:
            yield con
    finally:
        lock.release()


def snapshot(database: str, into: Path, timeout: float) -> Path:
    """A copy of the DuckDB file (and its write-ahead log, if a writer died with one) taken
    while no process of ours has it open; ``filelock.Timeout`` if one keeps it ``timeout`` s."""
    copy = Path(into) / Path(database).name
    with lock_of(database).acquire(timeout=timeout):
        shutil.copyfile(database, copy)
        if Path(f"{database}.wal").exists():
            shutil.copyfile(f"{database}.wal", f"{copy}.wal")
    return copy


class QueryEngine(dg.ConfigurableResource):
    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        raise NotImplementedError

    def parquet_rows(self, uri: str) -> int:
        """Rows in the Parquet files of a dataset directory."""
        raise NotImplementedError

    def parquet_rows_of(self, uris: list[str]) -> list[int]:
        """``parquet_rows`` of each dataset directory, in order."""
        return [self.parquet_rows(uri) for uri in uris]


class DuckDBQueryEngine(QueryEngine):
    """DuckDB over the local catalog's views (or in memory), reading the lake's Parquet."""

    database: str = ""

    def fetch(self, sql: str, params: list | None = None) -> list[tuple]:
        if not self.database:
            with duckdb.connect(":memory:") as con:
                return con.execute(sql, params or []).fetchall()
        with locked_connection(self.database) as con:
            return con.execute(sql, params or []).fetchall()

    def parquet_rows(self, uri: str) -> int:
        return self.parquet_rows_of([uri])[0]

    def parquet_rows_of(self, uris: list[str]) -> list[int]:
        # One connection for all: opening one costs about 14 ms, a count from the Parquet
        # footers under 1 ms (a month of days has 280 datasets to count).
        with duckdb.connect(":memory:") as con:  # no catalog needed: never waits for its lock
            return [con.execute("SELECT count(*) FROM read_parquet(?)",
                                [f"{uri.removeprefix('file://').rstrip('/')}/*.parquet"]).fetchone()[0]
                    for uri in uris]
