"""The Dagster asset dashboard/weekly_sales_inventory against the real Superset of the
session: it refreshes the dashboard's datasets and counts the week's rows through
Superset; with Superset unreachable or refusing the login it still materializes
(status skipped / error), so BI never fails the pipeline. Real Dagster instance
(temporary DAGSTER_HOME); no service is faked.
"""

from __future__ import annotations

import dagster as dg
import pytest

from salespipe_assets.assets.dashboards import (
    DASHBOARD_KEY,
    SupersetBI,
    dashboard_weekly_sales_inventory,
)
from salespipe_assets.assets.warehouse import WAREHOUSE_FACT_KEY, warehouse_key
from tests.servers import free_port
from tests_bi.conftest import ADMIN_PASSWORD, ADMIN_USER

WEEK = "2024-01-07"


@pytest.fixture
def instance(tmp_path):
    with dg.instance_for_test(temp_dir=str(tmp_path)) as inst:
        yield inst


def _run(instance, superset: SupersetBI):
    result = dg.materialize([dashboard_weekly_sales_inventory], partition_key=WEEK, instance=instance,
                            resources={"superset": superset}, raise_on_error=False)
    mats = result.asset_materializations_for_node(dashboard_weekly_sales_inventory.op.name)
    checks = [e.asset_check_evaluation_data for e in result.all_events
              if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    return result, {k: v.value for k, v in mats[0].metadata.items()}, checks[0]


def _report_warehouse_load(instance, rows: int):
    """What the warehouse asset records for the week (its metadata 'rows')."""
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=WAREHOUSE_FACT_KEY, partition=WEEK, metadata={"rows": rows}))


def test_the_asset_sits_after_the_warehouse_tables_in_group_bi():
    spec = next(iter(dashboard_weekly_sales_inventory.specs))
    assert spec.key == DASHBOARD_KEY and spec.group_name == "bi"
    dimensions = {warehouse_key(t) for t in ("store", "product", "calendar")}
    assert {d.asset_key for d in spec.deps} == {WAREHOUSE_FACT_KEY, *dimensions}
    assert isinstance(dashboard_weekly_sales_inventory.partitions_def, dg.WeeklyPartitionsDefinition)


def test_refreshes_the_datasets_and_sees_the_weeks_rows(instance, superset, warehouse_sql):
    rows = warehouse_sql(f"SELECT count(*) FROM weekly_sales_inventory WHERE week_start = DATE '{WEEK}'")[0][0]
    assert rows > 0
    _report_warehouse_load(instance, rows)
    result, meta, check = _run(instance, SupersetBI(url=superset.url, username=ADMIN_USER, password=ADMIN_PASSWORD))
    assert result.success
    assert meta["status"] == "refreshed"
    assert meta["datasets"] == "weekly_sales_inventory_by_store_product"
    assert meta["dashboard_rows_for_week"] == rows == meta["warehouse_rows_for_week"]
    assert check.passed and check.metadata["checked"].value is True


def test_a_row_count_mismatch_fails_the_check_but_not_the_run(instance, superset, warehouse_sql):
    rows = warehouse_sql(f"SELECT count(*) FROM weekly_sales_inventory WHERE week_start = DATE '{WEEK}'")[0][0]
    _report_warehouse_load(instance, rows + 1)  # as if the dashboard missed a row
    result, meta, check = _run(instance, SupersetBI(url=superset.url, username=ADMIN_USER, password=ADMIN_PASSWORD))
    assert result.success and meta["status"] == "refreshed"
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_superset_down_is_skipped_not_failed(instance):
    port = free_port()  # nothing listens there
    result, meta, check = _run(instance, SupersetBI(url=f"http://127.0.0.1:{port}"))
    assert result.success
    assert meta["status"] == "skipped" and f"127.0.0.1:{port}" in meta["reason"]
    assert check.metadata["checked"].value is False


def test_a_refused_login_is_reported_not_raised(instance, superset):
    result, meta, check = _run(instance, SupersetBI(url=superset.url, username=ADMIN_USER, password="wrong"))
    assert result.success
    assert meta["status"] == "error" and "401" in meta["reason"]
    assert "wrong" not in str(meta)  # the password never reaches metadata
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN


def test_credentials_come_from_the_environment(monkeypatch):
    from salespipe_assets.assets.dashboards import superset_resource

    monkeypatch.setenv("SUPERSET_URL", "http://127.0.0.1:1")
    monkeypatch.setenv("SUPERSET_ADMIN_USER", "someone")
    monkeypatch.setenv("SUPERSET_ADMIN_PASSWORD", "s3cret")
    declared = superset_resource()
    assert declared.password == "SUPERSET_ADMIN_PASSWORD"  # a dg.EnvVar: the name, not the secret
    res = declared.process_config_and_initialize()
    assert res.url == "http://127.0.0.1:1"
    assert res.username == "someone" and res.password == "s3cret"
