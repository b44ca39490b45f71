"""The local catalog: DuckDB views over the curated, staged and rejected Parquet.

The stand-in for Glue: a view per dataset, defined over the lake's files, so that
``salespipe query`` and the asset checks read the lake through table names.
"""

from __future__ import annotations

from glob import glob

from salespipe_assets.sql import identifier, literal
from spark_steps.contract import CONTRACT, DAILY_TABLES, SNAPSHOT_TABLES
from spark_steps.fact import FACT_COLUMNS

FACT_VIEW = "weekly_sales_inventory"


def _view_sources(root: str) -> dict[str, tuple[str, str]]:
    """view name -> (Parquet glob, SELECT list)."""
    sources = {
        FACT_VIEW: (
            f"{root}/curated/weekly_sales_inventory/week_start=*/*.parquet",
            ", ".join(FACT_COLUMNS),
        )
    }
    for t in SNAPSHOT_TABLES:
        sources[t] = (f"{root}/curated/{t}/*.parquet", ", ".join(CONTRACT[t].column_names))
    for t in DAILY_TABLES:
        sources[f"staged_{t}"] = (f"{root}/staged/{t}/business_date=*/*.parquet", "*")
    for t in CONTRACT:
        sources[f"rejects_{t}"] = (f"{root}/rejects/{t}/business_date=*/*.parquet", "*")
    return sources


def refresh_views(con, lake_root: str, only: list[str] | None = None) -> dict[str, int]:
    """(Re)define the views whose files exist; return rows visible per view."""
    visible = {}
    for view, (pattern, columns) in _view_sources(lake_root).items():
        if only is not None and view not in only:
            continue
        if not glob(pattern):
            continue
        hive = ", hive_partitioning = true" if "=*" in pattern else ""
        con.execute(
            f"CREATE OR REPLACE VIEW {identifier(view)} AS SELECT {columns} "
            f"FROM read_parquet({literal(pattern)}{hive})"
        )
        visible[view] = con.execute(f"SELECT count(*) FROM {identifier(view)}").fetchone()[0]
    return visible
