"""The one environment switch and the settings every environment shares.

``SALESPIPE_ENV`` picks the resources (``local`` is the embedded default); everything
else is a location. Secrets never live here: resources read them with ``dg.EnvVar``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LAKE = PROJECT_ROOT / "data" / "lake"
DEFAULT_PARTITION_START = "2020-01-05"  # a Sunday; days and weeks both start here


@dataclass(frozen=True)
class Settings:
    env: str
    lake: str
    warehouse: str
    catalog: str
    spark_master: str
    partition_start: str
    partition_end: str | None
    warehouse_kind: str = "duckdb"  # chosen apart from the lake: Snowflake works with a local lake
    glue_database: str = "salespipe"
    athena_workgroup: str = "primary"
    athena_output: str | None = None

    @classmethod
    def from_env(cls) -> "Settings":
        env = os.environ.get("SALESPIPE_ENV", "local")
        if env not in ("local", "aws"):
            raise ValueError(f"SALESPIPE_ENV must be 'local' or 'aws', not {env!r}")
        lake = os.environ.get("SALESPIPE_LAKE", str(DEFAULT_LAKE))
        if not lake.startswith("s3://"):
            lake = str(Path(lake).resolve())
        local_meta = lake if not lake.startswith("s3://") else str(PROJECT_ROOT / "data")
        warehouse_kind = os.environ.get("SALESPIPE_WAREHOUSE_KIND", "snowflake" if env == "aws" else "duckdb")
        if warehouse_kind not in ("duckdb", "snowflake"):
            raise ValueError(f"SALESPIPE_WAREHOUSE_KIND must be 'duckdb' or 'snowflake', not {warehouse_kind!r}")
        return cls(
            env=env,
            lake=lake,
            warehouse=os.environ.get("SALESPIPE_WAREHOUSE", str(Path(local_meta) / "warehouse.duckdb")),
            catalog=os.environ.get("SALESPIPE_CATALOG", str(Path(local_meta) / "catalog.duckdb")),
            spark_master=os.environ.get("SALESPIPE_SPARK_MASTER", "emr" if env == "aws" else "local[2]"),
            partition_start=os.environ.get("SALESPIPE_PARTITION_START", DEFAULT_PARTITION_START),
            partition_end=os.environ.get("SALESPIPE_PARTITION_END") or None,
            warehouse_kind=warehouse_kind,
            glue_database=os.environ.get("SALESPIPE_GLUE_DATABASE", "salespipe"),
            athena_workgroup=os.environ.get("SALESPIPE_ATHENA_WORKGROUP", "primary"),
            athena_output=os.environ.get("SALESPIPE_ATHENA_OUTPUT") or None,
        )
