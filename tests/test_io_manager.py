"""The lake IO manager: paths and published-dataset metadata between assets, never rows.

Real components: local-mode Spark running the stage_file step on hand-built landing files,
a real (ephemeral) Dagster instance, the lake as a local directory. Nothing is faked.
"""

import json

import dagster as dg
import pytest

from salespipe_assets.resources.io_manager import LakeDataset, LakeIOManager
from salespipe_assets.resources.lake import Lake, LocalLake
from salespipe_assets.resources.spark import SparkRuntime
from tests.conftest import sales_row, write_landing

days = dg.DailyPartitionsDefinition(start_date="2024-01-07", end_date="2024-01-14")
weeks = dg.WeeklyPartitionsDefinition(start_date="2024-01-07", end_date="2024-01-21")


@dg.asset(key="staged_sales", partitions_def=days, io_manager_key="lake_io")
def staged_sales(context: dg.AssetExecutionContext, lake: Lake, spark: SparkRuntime):
    day = context.partition_key
    result = spark.run_step(context, "stage_file", lake=lake.root, table="sales",
                            source=f"raw/sales_{day}.csv", business_date=day)
    return dg.MaterializeResult(value=result)


@dg.asset(partitions_def=weeks, ins={"staged_sales": dg.AssetIn()})
def sales_of_the_week(staged_sales: dict[str, LakeDataset], spark: SparkRuntime):
    rows = sum(d.dataframe(spark.session()).count() for d in staged_sales.values())
    return dg.MaterializeResult(metadata={"days": list(staged_sales), "rows": rows,
                                          "paths": [d.uri for d in staged_sales.values()]})


@dg.asset(key="store", io_manager_key="lake_io")
def unpublished_store():
    return dg.MaterializeResult(value={"row_count": 3})  # claims rows it never published


@pytest.fixture
def lake(tmp_path):
    write_landing(tmp_path, "sales", "2024-01-08", [sales_row(i, day="2024-01-08") for i in (1, 2, 3)])
    write_landing(tmp_path, "sales", "2024-01-09", [sales_row(i, day="2024-01-09") for i in (4, 5)]
                  + [sales_row(6, day="2024-01-09", qty="abc")])  # one reject
    return tmp_path


def _defs(lake, spark_conf) -> dg.Definitions:
    local = LocalLake(root=str(lake))
    return dg.Definitions(
        assets=[staged_sales, sales_of_the_week, unpublished_store],
        resources={"lake": local, "spark": SparkRuntime(conf=spark_conf), "lake_io": LakeIOManager(lake=local)},
    )


def test_outputs_are_checked_and_described_and_inputs_are_paths(lake, spark):
    defs = _defs(lake, {"spark.sql.shuffle.partitions": "2"})
    with dg.DagsterInstance.ephemeral() as instance:
        for day in ("2024-01-08", "2024-01-09"):
            assert dg.materialize([staged_sales], partition_key=day, instance=instance,
                                  resources=defs.resources).success
        events = instance.fetch_materializations(dg.AssetKey("staged_sales"), limit=10).records
        meta = {e.partition_key: e.asset_materialization.metadata for e in events}
        week = dg.materialize([sales_of_the_week, staged_sales], partition_key="2024-01-07",
                              instance=instance, resources=defs.resources, selection=[sales_of_the_week])
        assert week.success
        [week_meta] = [e.asset_materialization.metadata for e in
                       instance.fetch_materializations(dg.AssetKey("sales_of_the_week"), limit=1).records]

    assert {d: m["dagster/row_count"].value for d, m in meta.items()} == {"2024-01-08": 3, "2024-01-09": 2}
    assert meta["2024-01-08"]["path"].value == f"file://{lake}/staged/sales/business_date=2024-01-08"
    columns = [c.name for c in meta["2024-01-08"]["dagster/column_schema"].value.columns]
    assert columns[:3] == ["trans_id", "prod_key", "store_key"]
    # the week got the two published days (the 7th and 10th-13th have none), as paths
    assert week_meta["days"].value == ["2024-01-08", "2024-01-09"] and week_meta["rows"].value == 5
    assert week_meta["paths"].value == [f"file://{lake}/staged/sales/business_date=2024-01-0{d}" for d in (8, 9)]


def test_an_output_the_step_did_not_publish_fails_its_asset(lake):
    defs = _defs(lake, {})
    result = dg.materialize([unpublished_store], resources=defs.resources, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data)
    assert f"file://{lake}/curated/store is not published: no _manifest.json and _SUCCESS" in message


def test_the_pipelines_spark_outputs_go_through_it_partition_by_partition(tmp_path, spark, monkeypatch):
    """The real definitions: a three-day range staged in one run, then its week. Every staged
    partition and the week are checked against their manifests by the lake IO manager, which
    records each one's own row count, path and publish time (``published_at`` comes only from
    it); the week's fact was built from the days the IO manager handed it."""
    import datetime as dt

    from salespipe_assets.datagen import generate
    from salespipe_assets.definitions import build_definitions
    from salespipe_assets.jobs import daily_job, weekly_job
    from salespipe_assets.resources.io_manager import LocalLakeIOManager
    from salespipe_assets.settings import Settings

    monkeypatch.setenv("SALESPIPE_SETTLE_SECONDS", "0")
    lake = tmp_path / "lake"
    generate(lake, dt.date(2024, 1, 8), 3, scale=0.002, seed=5, progress=False)
    settings = Settings(env="local", lake=str(lake), warehouse=str(tmp_path / "w.duckdb"),
                        catalog=str(tmp_path / "c.duckdb"), spark_master="local[2]",
                        partition_start="2020-01-05", partition_end=None)
    defs = build_definitions(settings)
    assert isinstance(defs.resources["lake_io"], LocalLakeIOManager)
    days = ["2024-01-08", "2024-01-09", "2024-01-10"]
    with dg.DagsterInstance.ephemeral() as instance:
        daily = defs.resolve_job_def(daily_job.name).execute_in_process(
            instance=instance, tags={"dagster/asset_partition_range_start": days[0],
                                     "dagster/asset_partition_range_end": days[-1]})
        assert daily.success
        weekly = defs.resolve_job_def(weekly_job.name).execute_in_process(instance=instance, partition_key="2024-01-07")
        assert weekly.success
        staged = {r.partition_key: r.asset_materialization.metadata for r in instance.fetch_materializations(
            dg.AssetKey("staged_sales"), limit=10).records}
        [fact] = [r.asset_materialization.metadata for r in instance.fetch_materializations(
            dg.AssetKey("weekly_sales_inventory"), limit=1).records]
        handled = [e for e in weekly.all_events if e.event_type == dg.DagsterEventType.HANDLED_OUTPUT]
        loaded = [e for e in weekly.all_events if e.event_type == dg.DagsterEventType.LOADED_INPUT]

    manifests = {d: json.loads((lake / f"staged/sales/business_date={d}/_manifest.json").read_text()) for d in days}
    assert sorted(staged) == days
    for day in days:
        assert staged[day]["dagster/row_count"].value == manifests[day]["row_count"] > 0
        assert staged[day]["published_at"].value == manifests[day]["published_at"]
        assert staged[day]["path"].value == f"file://{lake}/staged/sales/business_date={day}"
    week_manifest = json.loads((lake / "curated/weekly_sales_inventory/week_start=2024-01-07/_manifest.json").read_text())
    assert fact["published_at"].value == week_manifest["published_at"]
    assert fact["dagster/row_count"].value == week_manifest["row_count"] > 0
    assert fact["days_with_sales"].value == 3
    assert fact["sales_rows_accepted"].value == sum(m["rows_accepted"] for m in manifests.values())
    assert any(e.event_specific_data.manager_key == "lake_io" for e in handled)
    # the catalog and the warehouse got the week, and the fact its days, from the IO manager
    assert {(e.step_key, e.event_specific_data.input_name) for e in loaded} >= {
        ("weekly_sales_inventory", "staged_sales"), ("weekly_sales_inventory", "staged_inventory"),
        ("catalog__weekly_sales_inventory", "weekly_sales_inventory"),
        ("warehouse__weekly_sales_inventory", "weekly_sales_inventory")}


def test_a_step_that_reports_other_rows_than_it_published_fails(lake, spark):
    """A range's output whose report disagrees with one partition's manifest fails the step."""
    local = LocalLake(root=str(lake))

    @dg.asset(key="staged_sales", partitions_def=days, io_manager_key="lake_io")
    def miscounted(context: dg.AssetExecutionContext, spark: SparkRuntime):
        reports = {}
        for day in context.partition_keys:
            r = spark.run_step(context, "stage_file", lake=str(lake), table="sales",
                               source=f"raw/sales_{day}.csv", business_date=day)
            reports[day] = {**r, "rows_accepted": r["rows_accepted"] + (day == "2024-01-09")}
        return dg.MaterializeResult(value=reports)

    result = dg.materialize([miscounted], resources={"spark": SparkRuntime(conf={}), "lake_io": LakeIOManager(lake=local)},
                            tags={"dagster/asset_partition_range_start": "2024-01-08",
                                  "dagster/asset_partition_range_end": "2024-01-09"}, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert (f"file://{lake}/staged/sales/business_date=2024-01-09: the step reported 3 rows, its manifest says 2"
            in failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data))
