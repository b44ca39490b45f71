"""The dashboard as the last asset of the graph: after each warehouse load, Superset's
datasets are refreshed through its REST API, so lineage runs from raw files to dashboard.

BI being down never fails the pipeline: when Superset does not answer at SUPERSET_URL
the asset still materializes, with ``status: skipped`` and the reason. Superset reads the
warehouse itself (the DuckDB file read-only, or Snowflake/Athena); this asset never opens
it and moves no rows, only counts.
"""

import dagster as dg

from salespipe_assets.assets.ranges import WEEKLY_POLICY, check_evaluation, check_outputs, materialize
from salespipe_assets.assets.warehouse import WAREHOUSE_FACT_KEY, warehouse_key
from salespipe_assets.bi import DASHBOARD_SLUG, SupersetClient, SupersetError
from salespipe_assets.partitions import weekly_partitions
from salespipe_assets.resources.superset import SupersetBI, superset_resource
from spark_steps.contract import SNAPSHOT_TABLES

DASHBOARD_KEY = dg.AssetKey(["dashboard", "weekly_sales_inventory"])
ROWS_CHECK = "dashboard_rows_match_warehouse"

__all__ = ["DASHBOARD_KEY", "SupersetBI", "dashboard_weekly_sales_inventory", "superset_resource"]


def refresh_dashboard(client: SupersetClient, week: str) -> dict:
    """Re-sync each dataset of the dashboard with the warehouse, drop cached chart data, and
    count the rows the dashboard sees for ``week``."""
    datasets = client.get(f"/api/v1/dashboard/{DASHBOARD_SLUG}/datasets")["result"]
    if not datasets:
        raise SupersetError(f"dashboard '{DASHBOARD_SLUG}' has no datasets (run 'make bi')")
    for ds in datasets:
        client.put(f"/api/v1/dataset/{ds['id']}/refresh")
    client.post("/api/v1/cachekey/invalidate", {"datasource_uids": [f"{ds['id']}__table" for ds in datasets]})
    fact = next(ds for ds in datasets if "weekly_sales_inventory" in ds["table_name"])
    next_week = weekly_partitions.get_next_partition_key(week) or week
    counted = client.post("/api/v1/chart/data", {
        "datasource": {"id": fact["id"], "type": "table"},
        "queries": [{"columns": [], "row_limit": 1,
                     "metrics": [{"expressionType": "SQL", "sqlExpression": "COUNT(*)", "label": "rows"}],
                     "filters": [{"col": "week_start", "op": "TEMPORAL_RANGE", "val": f"{week} : {next_week}"}]}],
        "result_format": "json", "result_type": "full"})
    week_rows = int(counted["result"][0]["data"][0]["rows"])
    return {"datasets": [ds["table_name"] for ds in datasets], "week_rows": week_rows}


def _warehouse_rows(context: dg.AssetExecutionContext, week: str) -> int | None:
    """Rows the warehouse load reported for the week (from the event log, not the warehouse)."""
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=WAREHOUSE_FACT_KEY, asset_partitions=[week]), limit=1)
    if not found.records:
        return None
    rows = found.records[0].asset_materialization.metadata.get("rows")
    return int(rows.value) if rows is not None else None


@dg.asset(
    key=DASHBOARD_KEY,
    group_name="bi",
    partitions_def=weekly_partitions,
    deps=[WAREHOUSE_FACT_KEY, *(warehouse_key(t) for t in SNAPSHOT_TABLES)],
    kinds={"superset"},
    description="Superset dashboard 'Weekly sales & inventory' (bi/dashboards/): its datasets "
                "refreshed after each warehouse load. Skipped, never failed, when Superset is down.",
    check_specs=[dg.AssetCheckSpec(
        ROWS_CHECK, asset=DASHBOARD_KEY,
        description="Rows the dashboard's dataset shows for the week = rows loaded into the warehouse "
                    "(a fan-out in the dimension joins or a stale connection would differ). "
                    "Not checked when Superset was skipped.")],
    backfill_policy=WEEKLY_POLICY,
)
def dashboard_weekly_sales_inventory(context: dg.AssetExecutionContext, superset: SupersetBI):
    """Each week of the run: its own materialization and check result."""
    refreshed = {week: _refresh_week(context, superset, week) for week in context.partition_keys}
    yield from materialize(context, DASHBOARD_KEY, {week: metadata for week, (metadata, _) in refreshed.items()})
    for week, (_, check) in refreshed.items():
        yield check_evaluation(context, DASHBOARD_KEY, ROWS_CHECK, week, **check)
    yield from check_outputs(context, [dg.AssetCheckKey(DASHBOARD_KEY, ROWS_CHECK)])


def _refresh_week(context: dg.AssetExecutionContext, superset: SupersetBI, week: str) -> tuple[dict, dict]:
    """(the week's metadata, its check result's arguments)."""
    metadata: dict = {"week": week}
    warehouse_rows = _warehouse_rows(context, week)
    reason = superset.unreachable_reason()
    if reason:
        context.log.info(f"dashboard refresh skipped: {reason}")
        metadata.update(status="skipped", reason=reason)
        check = dict(passed=True, metadata={"checked": False, "reason": reason})
    else:
        try:
            refreshed = refresh_dashboard(superset.client(), week)
        except (SupersetError, OSError, KeyError, IndexError, StopIteration) as exc:
            # BI trouble is reported, loudly, but never fails the data pipeline.
            context.log.warning(f"dashboard refresh failed: {exc}")
            metadata.update(status="error", reason=str(exc)[:500])
            check = dict(passed=False, severity=dg.AssetCheckSeverity.WARN,
                         metadata={"checked": False, "reason": str(exc)[:500]})
        else:
            metadata.update(status="refreshed", datasets=", ".join(refreshed["datasets"]),
                            dashboard_rows_for_week=refreshed["week_rows"],
                            dashboard_url=dg.MetadataValue.url(
                                f"{superset.url.rstrip('/')}/superset/dashboard/{DASHBOARD_SLUG}/"))
            passed = warehouse_rows is None or refreshed["week_rows"] == warehouse_rows
            check = dict(
                passed=passed, severity=dg.AssetCheckSeverity.WARN,
                metadata={"checked": warehouse_rows is not None, "dashboard_rows": refreshed["week_rows"],
                          "warehouse_rows": warehouse_rows if warehouse_rows is not None else -1})
    if warehouse_rows is not None:
        metadata["warehouse_rows_for_week"] = warehouse_rows
    return metadata, check
