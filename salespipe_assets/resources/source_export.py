"""The production raw zone's upstream: Snowflake unloads a business day of the five source
tables into the lake's ``raw/`` prefix (SPEC §1) - one gzip CSV per table and day.

    COPY INTO @salespipe_raw/sales_2024-01-08.csv.gz FROM (SELECT ... WHERE trans_dt = DATE '2024-01-08')
      FILE_FORMAT = (FORMAT_NAME = 'salespipe_raw_csv') HEADER = TRUE SINGLE = TRUE OVERWRITE = TRUE

The stage is external, over ``<lake>/raw/`` on S3 (a storage integration grants Snowflake
access). ``OVERWRITE`` and a fixed file name make a day's export idempotent: running it again
replaces the same five objects. Column aliases are quoted so the header keeps the contract's
lower-case names; the file format writes NULL as an empty field and dates as YYYY-MM-DD.
"""

import os

import dagster as dg
from dagster_snowflake import SnowflakeResource

from salespipe_assets.resources.lake import Lake
from salespipe_assets.resources.snowflake_warehouse import rows_as_dicts, snowflake_resource_from_env, unquoted_name
from salespipe_assets.sql import date_literal, literal
from spark_steps.contract import CONTRACT, TABLES, checked_date, landing_name

SINGLE_FILE_LIMIT = 5 * 1024**3  # the largest single object Snowflake writes to S3


class SnowflakeSourceExport(dg.ConfigurableResource):
    """Where the source tables live (``<source_database>.<source_schema>.<table>``) and the
    objects used to unload them, created idempotently in the connection's schema."""

    snowflake: SnowflakeResource
    source_database: str
    source_schema: str
    stage: str = "salespipe_raw"
    file_format: str = "salespipe_raw_csv"
    storage_integration: str | None = None

    def day_query(self, table: str, day: str) -> str:
        """The rows of ``table`` for business day ``day``: daily tables filtered on their
        business-date column, snapshots whole; columns in contract order and case."""
        spec = CONTRACT[table]
        columns = ", ".join(f'{unquoted_name(c)} AS "{c}"' for c in spec.column_names)
        source = f"{unquoted_name(self.source_database)}.{unquoted_name(self.source_schema)}.{unquoted_name(table)}"
        where = f" WHERE {spec.business_date_column} = {date_literal(day)}" if spec.daily else ""
        return f"SELECT {columns} FROM {source}{where}"  # nosec B608  # unquoted_name() names, date_literal() day

    def unload_sql(self, table: str, day: str) -> str:
        checked_date(day, "business day")  # a snapshot's query has no date, but its file name does
        return (f"COPY INTO @{unquoted_name(self.stage)}/{landing_name(table, day)} FROM ({self.day_query(table, day)}) "
                f"FILE_FORMAT = (FORMAT_NAME = {literal(self.file_format)}) "
                f"HEADER = TRUE SINGLE = TRUE OVERWRITE = TRUE MAX_FILE_SIZE = {SINGLE_FILE_LIMIT}")

    def setup_sql(self, lake: Lake) -> list[str]:
        if not lake.fs.is_s3:
            raise ValueError("the Snowflake source export writes to an S3 raw zone; a local lake gets "
                             "its raw files from 'salespipe generate' or a copy")
        if not self.storage_integration:
            raise ValueError("the export stage needs a storage integration: set SNOWFLAKE_STORAGE_INTEGRATION")
        ff = unquoted_name(self.file_format)
        raw_url = f"s3://{lake.fs.path('raw')}/"
        return [
            f"CREATE FILE FORMAT IF NOT EXISTS {ff} TYPE = CSV COMPRESSION = GZIP FIELD_DELIMITER = ',' "
            "FIELD_OPTIONALLY_ENCLOSED_BY = '\"' NULL_IF = ('') DATE_FORMAT = 'YYYY-MM-DD'",
            f"CREATE STAGE IF NOT EXISTS {unquoted_name(self.stage)} URL = {literal(raw_url)} "
            f"STORAGE_INTEGRATION = {unquoted_name(self.storage_integration)} FILE_FORMAT = {ff}",
        ]

    def export_day(self, lake: Lake, day: str) -> dict[str, dict]:
        """Unload the five tables of ``day``; per table the file written and Snowflake's unload result."""
        checked_date(day, "business day")
        out = {}
        with self.snowflake.get_connection() as conn, conn.cursor() as cur:
            for sql in self.setup_sql(lake):
                cur.execute(sql)
            for table in TABLES:
                cur.execute(self.unload_sql(table, day))
                result = rows_as_dicts(cur)
                out[table] = {"path": lake.uri(f"raw/{landing_name(table, day)}"),
                              "rows_unloaded": sum(int(r.get("rows_unloaded") or 0) for r in result),
                              "output_bytes": sum(int(r.get("output_bytes") or 0) for r in result)}
        return out


def source_export_from_env() -> SnowflakeSourceExport:
    return SnowflakeSourceExport(
        snowflake=snowflake_resource_from_env(),
        source_database=dg.EnvVar("SNOWFLAKE_SOURCE_DATABASE"),
        source_schema=dg.EnvVar("SNOWFLAKE_SOURCE_SCHEMA"),
        stage=os.environ.get("SNOWFLAKE_EXPORT_STAGE", "salespipe_raw"),
        storage_integration=os.environ.get("SNOWFLAKE_STORAGE_INTEGRATION") or None,
    )
