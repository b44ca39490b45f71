"""Snowflake as the warehouse: loaded by Snowflake itself, from a stage over the lake.

The objects the load needs are created idempotently on every load (file format, stage,
tables, any column the contract gained). The stage follows the lake, not the environment:
an S3 lake is read through an external stage (``STORAGE_INTEGRATION``) listing exactly the
partition's files; a local lake is uploaded with ``PUT`` to an internal stage under a
fresh per-load path, so stale uploads are never read, and purged once loaded.

A week is one transaction: delete the week, ``COPY INTO`` with ``MATCH_BY_COLUMN_NAME``
and ``FORCE`` (Snowflake would otherwise skip files it loaded before and leave the week
empty), then set ``week_start`` - it is carried by the partition path, not the file, so
the copied rows hold NULL until that update, inside the same transaction - and commit.
Any error rolls back: the previous rows of the week stay. Dimensions are replaced the
same way.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from contextlib import contextmanager

import dagster as dg
from dagster_snowflake import SnowflakeResource

from salespipe_assets.resources.lake import Lake
from salespipe_assets.resources.warehouse import FACT_TABLE, Warehouse, fact_partition
from salespipe_assets.sql import date_literal, literal
from spark_steps.contract import CONTRACT
from spark_steps.fact import FACT_SCHEMA

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_STAGE_PATH = re.compile(r"^[A-Za-z0-9_=./-]+$")


def snowflake_type(t: str) -> str:
    decimal = re.fullmatch(r"decimal\((\d+),\s*(\d+)\)", t)
    if decimal:
        return f"NUMBER({decimal.group(1)},{decimal.group(2)})"
    return {"int": "INTEGER", "bigint": "BIGINT", "date": "DATE", "double": "FLOAT",
            "boolean": "BOOLEAN", "string": "VARCHAR"}[t]


def table_columns(table: str) -> list[tuple[str, str]]:
    """(name, Snowflake type) of a warehouse table, from the fact schema or the contract."""
    if table == FACT_TABLE:
        return [(n, snowflake_type(t)) for n, t in FACT_SCHEMA]
    return [(c.name, snowflake_type(c.type)) for c in CONTRACT[table].columns]


def unquoted_name(value: str) -> str:
    """An identifier written unquoted (Snowflake upper-cases it), after checking it is safe."""
    if not _NAME.match(value):
        raise ValueError(f"not a safe Snowflake identifier: {value!r}")
    return value


def _stage_path(value: str) -> str:
    if not _STAGE_PATH.match(value):
        raise ValueError(f"not a safe stage path: {value!r}")
    return value


def rows_as_dicts(cur) -> list[dict]:
    names = [d.name.lower() for d in cur.description or []]
    return [dict(zip(names, row)) for row in cur.fetchall()]


class SnowflakeWarehouse(Warehouse):
    """``external_stage_url`` is where the external stage points; by default the lake root when
    the lake is on S3 (with ``storage_integration``), and no external stage otherwise."""

    snowflake: SnowflakeResource
    stage: str = "salespipe_lake"
    file_format: str = "salespipe_parquet"
    storage_integration: str | None = None
    external_stage_url: str | None = None

    # -- the Warehouse interface -------------------------------------------------------------
    def load_fact_week(self, lake: Lake, week: str) -> dict:
        # SQL below: the table is a constant, the week a checked date_literal().
        week_sql = date_literal(week)
        return self._replace(
            lake, FACT_TABLE, fact_partition(week),
            delete=f"DELETE FROM {FACT_TABLE} WHERE week_start = {week_sql}",  # nosec B608  # constant + date_literal
            after_copy=f"UPDATE {FACT_TABLE} SET week_start = {week_sql} "  # nosec B608  # as above
                       "WHERE week_start IS NULL",
            count=f"SELECT count(*) FROM {FACT_TABLE} WHERE week_start = {week_sql}",  # nosec B608  # as above
        )

    def replace_dimension(self, lake: Lake, table: str) -> dict:
        name = unquoted_name(table)
        return self._replace(lake, name, f"curated/{table}",
                             delete=f"DELETE FROM {name}",  # nosec B608  # name checked by unquoted_name()
                             after_copy=None,
                             count=f"SELECT count(*) FROM {name}")  # nosec B608  # name checked by unquoted_name()

    # -- objects -------------------------------------------------------------------------------
    def stage_url(self, lake: Lake) -> str | None:
        if self.external_stage_url:
            return self.external_stage_url.rstrip("/") + "/"
        if lake.fs.is_s3:
            return f"s3://{lake.fs.path('')}/"
        return None

    def ensure_objects(self, cur, lake: Lake, tables: list[str]) -> None:
        """File format, stage and tables, created or completed; nothing that exists is replaced
        except a stage that points somewhere else than the lake."""
        for name in (self.file_format, self.stage, self.storage_integration):
            if name is not None:
                unquoted_name(name)  # every configured name checked before the first statement
        cur.execute(f"CREATE FILE FORMAT IF NOT EXISTS {unquoted_name(self.file_format)} TYPE = PARQUET")
        self._ensure_stage(cur, lake)
        for table in tables:
            self._ensure_table(cur, table)

    def _ensure_stage(self, cur, lake: Lake) -> None:
        stage, url = unquoted_name(self.stage), self.stage_url(lake)
        cur.execute(f"SHOW STAGES LIKE {literal(stage.upper())}")
        existing = [r for r in rows_as_dicts(cur) if r["name"].upper() == stage.upper()]
        if existing and (existing[0].get("url") or "").rstrip("/") == (url or "").rstrip("/"):
            return
        location = ""
        if url:
            if url.startswith("s3://") and not self.storage_integration:
                raise ValueError("an S3 lake needs a storage integration for its external stage: "
                                 "set SNOWFLAKE_STORAGE_INTEGRATION (see docs/snowflake.md)")
            location = f"URL = {literal(url)}"
            if self.storage_integration:
                location += f" STORAGE_INTEGRATION = {unquoted_name(self.storage_integration)}"
        create = "CREATE OR REPLACE STAGE" if existing else "CREATE STAGE IF NOT EXISTS"
        cur.execute(f"{create} {stage} {location} FILE_FORMAT = {unquoted_name(self.file_format)}")

    def _ensure_table(self, cur, table: str) -> None:
        # Looked up rather than CREATE TABLE IF NOT EXISTS every time: fakesnow treats that
        # statement on an existing table as a new table and forgets its load history.
        columns = table_columns(table)
        cur.execute("SELECT column_name FROM information_schema.columns "  # nosec B608  # literal() quotes the name
                    f"WHERE table_schema = CURRENT_SCHEMA() AND table_name = {literal(table.upper())}")
        present = {r[0].upper() for r in cur.fetchall()}
        if not present:
            cur.execute(f"CREATE TABLE IF NOT EXISTS {unquoted_name(table)} ("
                        + ", ".join(f"{n} {t}" for n, t in columns) + ")")
            return
        for n, t in columns:
            if n.upper() not in present:
                cur.execute(f"ALTER TABLE {unquoted_name(table)} ADD COLUMN {n} {t}")

    # -- loading ---------------------------------------------------------------------------------
    @contextmanager
    def _cursor(self):
        with self.snowflake.get_connection() as conn:
            try:
                with conn.cursor() as cur:
                    yield cur
            except BaseException:
                conn.close()  # get_connection closes it only on success
                raise

    def _copy_source(self, cur, lake: Lake, rel: str, files: list[str]) -> tuple[str, str, str]:
        """(stage location, FILES clause, extra copy option) for the Parquet files of ``rel``."""
        stage = unquoted_name(self.stage)
        if self.stage_url(lake):
            listed = ", ".join(literal(f) for f in files)
            return f"@{stage}/{_stage_path(rel)}/", f"FILES = ({listed})", ""  # never PURGE the lake
        target = f"{_stage_path(rel)}/{uuid.uuid4().hex}"
        for f in files:
            path = lake.fs.path(f"{rel}/{f}")
            if "'" in path:
                raise ValueError(f"cannot PUT a path containing a quote: {path}")
            cur.execute(f"PUT 'file://{path}' @{stage}/{target}/ AUTO_COMPRESS = FALSE OVERWRITE = TRUE")
        return f"@{stage}/{target}/", "", "PURGE = TRUE"

    def _replace(self, lake: Lake, table: str, rel: str, delete: str, after_copy: str | None, count: str) -> dict:
        files = [f for f in lake.fs.list_dir(rel) if f.endswith(".parquet")]
        if not files:
            raise ValueError(f"no Parquet files at {lake.fs.uri(rel)} to load into {table}")
        with self._cursor() as cur:
            self.ensure_objects(cur, lake, [table])
            source, files_clause, purge = self._copy_source(cur, lake, rel, files)
            cur.execute("BEGIN")
            try:
                cur.execute(delete)
                cur.execute(f"COPY INTO {table} FROM {source} {files_clause} "
                            f"FILE_FORMAT = (FORMAT_NAME = {literal(self.file_format)}) "
                            f"MATCH_BY_COLUMN_NAME = CASE_INSENSITIVE FORCE = TRUE {purge}")
                copy_result = rows_as_dicts(cur)
                not_loaded = [r for r in copy_result if r.get("status") != "LOADED"]
                if not_loaded:
                    raise RuntimeError(f"COPY INTO {table} did not load every file: {not_loaded}")
                if after_copy:
                    cur.execute(after_copy)
                cur.execute("COMMIT")
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except Exception as rollback_error:
                    # A lost session rolls back by itself; the first error is the one to raise.
                    log.warning("ROLLBACK after a failed load of %s failed too: %s", table, rollback_error)
                raise
            cur.execute(count)
            rows = cur.fetchone()[0]
        return {
            "rows": rows,
            "table": table,
            "rows_loaded": sum(int(r.get("rows_loaded") or 0) for r in copy_result),
            "copy_result": [{k: (v if v is None or isinstance(v, (int, str)) else str(v)) for k, v in r.items()}
                            for r in copy_result],
            "stage_location": source,
        }


def snowflake_resource_from_env() -> SnowflakeResource:
    """A ``SnowflakeResource`` whose settings are read by Dagster from the environment at run
    time (``dg.EnvVar``): secrets never pass through code or config. Key-pair authentication
    is used when ``SNOWFLAKE_PRIVATE_KEY`` or ``SNOWFLAKE_PRIVATE_KEY_PATH`` is set, otherwise
    ``SNOWFLAKE_PASSWORD``. ``SNOWFLAKE_HOST``/``PORT``/``PROTOCOL`` point the connector at
    another endpoint (a fakesnow server in tests)."""
    env = os.environ
    if env.get("SNOWFLAKE_PRIVATE_KEY"):
        auth = {"private_key": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY")}
    elif env.get("SNOWFLAKE_PRIVATE_KEY_PATH"):
        auth = {"private_key_path": dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PATH")}
    else:
        auth = {"password": dg.EnvVar("SNOWFLAKE_PASSWORD")}
    if "private_key" in auth or "private_key_path" in auth:
        if env.get("SNOWFLAKE_PRIVATE_KEY_PASSWORD"):
            auth["private_key_password"] = dg.EnvVar("SNOWFLAKE_PRIVATE_KEY_PASSWORD")
    optional = {field: dg.EnvVar(var) for field, var in (("warehouse", "SNOWFLAKE_WAREHOUSE"),
                                                         ("role", "SNOWFLAKE_ROLE")) if env.get(var)}
    endpoint = {}
    if env.get("SNOWFLAKE_HOST"):
        endpoint["host"] = env["SNOWFLAKE_HOST"]
    if env.get("SNOWFLAKE_PORT"):
        endpoint["port"] = int(env["SNOWFLAKE_PORT"])
    if env.get("SNOWFLAKE_PROTOCOL"):
        endpoint["protocol"] = env["SNOWFLAKE_PROTOCOL"]
    return SnowflakeResource(
        account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
        user=dg.EnvVar("SNOWFLAKE_USER"),
        database=dg.EnvVar("SNOWFLAKE_DATABASE"),
        schema=dg.EnvVar("SNOWFLAKE_SCHEMA"),  # the alias: `schema_=` would not reach the connector
        **auth,
        **optional,
        additional_snowflake_connection_args=endpoint or None,
    )


def snowflake_warehouse_from_env() -> SnowflakeWarehouse:
    """The warehouse resource for ``warehouse_kind = snowflake``, whatever the lake."""
    return SnowflakeWarehouse(
        snowflake=snowflake_resource_from_env(),
        stage=os.environ.get("SNOWFLAKE_STAGE", "salespipe_lake"),
        storage_integration=os.environ.get("SNOWFLAKE_STORAGE_INTEGRATION") or None,
    )
