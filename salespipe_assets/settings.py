"""The one environment switch and the settings every environment shares.

``SALESPIPE_ENV`` picks the resources (``local`` is the embedded default); everything
else is a location. Secrets never live here: resources read them with ``dg.EnvVar``.
"""

from __future__ import annotations

import datetime as dt
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
    instance: str = "local"  # the Dagster instance profile (salespipe_assets/instance.py)
    max_runtime: int = 3600  # seconds a run may take before run monitoring terminates it
    # Freshness (UTC "HH:MM"): a business day's files are expected by landing_due, its week
    # in the warehouse by warehouse_due; later, the asset shows as overdue in the UI.
    landing_due: str = "06:00"
    warehouse_due: str = "07:00"
    # When the aws environment's daily Snowflake export of the day before runs (UTC "HH:MM").
    export_at: str = "01:00"
    # The landing sensor's minimum interval (seconds): 1 = every daemon loop.
    sensor_interval: int = 1
    # A local landed file counts once its size and modification time have not changed
    # for this many seconds (a file still being written is not taken).
    settle_seconds: float = 5.0
    # Single-run backfills: at most this many days / weeks in one run (a month, a year).
    days_per_run: int = 31
    weeks_per_run: int = 53

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
        instance = os.environ.get("SALESPIPE_INSTANCE", "local")
        if instance not in ("local", "postgres"):
            raise ValueError(f"SALESPIPE_INSTANCE must be 'local' or 'postgres', not {instance!r}")
        max_runtime = os.environ.get("SALESPIPE_MAX_RUNTIME", "3600")
        if not max_runtime.isdigit() or int(max_runtime) < 1:
            raise ValueError(f"SALESPIPE_MAX_RUNTIME must be a whole number of seconds >= 1, not {max_runtime!r}")
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
            instance=instance,
            max_runtime=int(max_runtime),
            landing_due=_clock("SALESPIPE_LANDING_DUE", "06:00"),
            warehouse_due=_clock("SALESPIPE_WAREHOUSE_DUE", "07:00"),
            export_at=_clock("SALESPIPE_EXPORT_AT", "01:00"),
            sensor_interval=_number("SALESPIPE_SENSOR_INTERVAL", "1", int, minimum=1),
            settle_seconds=_number("SALESPIPE_SETTLE_SECONDS", "5", float, minimum=0),
            days_per_run=_number("SALESPIPE_DAYS_PER_RUN", "31", int, minimum=1),
            weeks_per_run=_number("SALESPIPE_WEEKS_PER_RUN", "53", int, minimum=1),
        )


def _clock(var: str, default: str) -> str:
    """An "HH:MM" (24 h) time of day from the environment."""
    value = os.environ.get(var) or default
    try:
        dt.time.fromisoformat(value)
        if len(value) != 5:
            raise ValueError
    except ValueError:
        raise ValueError(f"{var} must be a time of day HH:MM (24 h, UTC), not {value!r}") from None
    return value


def _number(var: str, default: str, kind: type, minimum: float):
    value = os.environ.get(var) or default
    try:
        number = kind(value)
        if not number >= minimum:
            raise ValueError
    except ValueError:
        raise ValueError(f"{var} must be a {'whole ' if kind is int else ''}number >= {minimum:g}, "
                         f"not {value!r}") from None
    return number
