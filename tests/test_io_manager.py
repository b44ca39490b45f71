"""The lake IO manager: paths and published-dataset metadata between assets, never rows.

Real components: local-mode Spark running the stage_file step on hand-built landing files,
a real (ephemeral) Dagster instance, the lake as a local directory. Nothing is faked.
"""

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
def sales_of_the_week(staged_sales: list[LakeDataset], spark: SparkRuntime):
    rows = sum(d.dataframe(spark.session()).count() for d in staged_sales)
    return dg.MaterializeResult(metadata={"days": len(staged_sales), "rows": rows,
                                          "paths": [d.uri for d in staged_sales]})


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
    assert week_meta["days"].value == 2 and week_meta["rows"].value == 5
    assert week_meta["paths"].value == [f"file://{lake}/staged/sales/business_date=2024-01-0{d}" for d in (8, 9)]


def test_an_output_the_step_did_not_publish_fails_its_asset(lake):
    defs = _defs(lake, {})
    result = dg.materialize([unpublished_store], resources=defs.resources, raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    message = failure.event_specific_data.error.message + str(failure.event_specific_data.user_failure_data)
    assert f"file://{lake}/curated/store is not published: no _manifest.json and _SUCCESS" in message
