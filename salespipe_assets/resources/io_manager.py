"""The lake IO manager: Dagster hands assets paths, never rows.

An asset's output is what its Spark step reported (a dict; rows stayed in the lake). The
IO manager resolves the asset and partition to its lake dataset (a local directory or
``s3://``), checks that the step really published it - the success marker and the
manifest are there, and the manifest's row count is the one the step reported - and
records row count, schema and path as the output's metadata. A downstream asset receives
a ``LakeDataset`` (or a list of them, one per upstream partition, for a week of days):
where the data is and what it looks like; ``dataframe(spark)`` reads it inside Spark.

Wiring: ``io_manager_key="lake_io"`` on the Spark assets, which return
``dg.MaterializeResult(value=result, metadata=...)``; downstream assets take
``ins={"staged_sales": dg.AssetIn(...)}`` instead of ``deps``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from salespipe_assets.resources.lake import Lake
from spark_steps.contract import checked_date
from spark_steps.lakefs import MANIFEST, SUCCESS

# asset key -> dataset directory under the lake ({partition} is the partition key)
DATASETS = {
    "staged_sales": "staged/sales/business_date={partition}",
    "staged_inventory": "staged/inventory/business_date={partition}",
    "store": "curated/store",
    "product": "curated/product",
    "calendar": "curated/calendar",
    "weekly_sales_inventory": "curated/weekly_sales_inventory/week_start={partition}",
}


@dataclass(frozen=True)
class LakeDataset:
    """A published dataset: where it is and what it holds, never its rows."""

    rel: str  # relative to the lake root
    uri: str  # for Spark (file:// or s3a://)
    row_count: int
    schema: list[dict] = field(default_factory=list)
    manifest: dict = field(default_factory=dict, compare=False)

    def dataframe(self, spark):
        return spark.read.parquet(self.uri)


class LakeIOManager(dg.ConfigurableIOManager):
    lake: Lake
    datasets: dict[str, str] = DATASETS

    def dataset_rel(self, key: dg.AssetKey, partition: str | None) -> str:
        name = key.to_user_string()
        if name not in self.datasets:
            raise dg.Failure(f"the lake IO manager has no dataset for asset {name}", allow_retries=False)
        template = self.datasets[name]
        if "{partition}" in template and partition is None:
            raise dg.Failure(f"asset {name} lives in partitions of {template}: a partition key is needed")
        return template.format(partition=checked_date(partition) if "{partition}" in template else None)

    def published(self, rel: str) -> LakeDataset:
        fs = self.lake.fs
        manifest = fs.read_json(f"{rel}/{MANIFEST}")
        if manifest is None or not fs.exists(f"{rel}/{SUCCESS}"):
            missing = " and ".join(n for n in (MANIFEST, SUCCESS) if not fs.exists(f"{rel}/{n}"))
            raise dg.Failure(f"{fs.uri(rel)} is not published: no {missing}", allow_retries=False)
        return LakeDataset(rel=rel, uri=fs.uri(rel), row_count=manifest["row_count"],
                           schema=manifest.get("schema", []), manifest=manifest)

    def handle_output(self, context: dg.OutputContext, obj: dict | None) -> None:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        dataset = self.published(self.dataset_rel(context.asset_key, partition))
        reported = (obj or {}).get("row_count", (obj or {}).get("rows_accepted"))
        if (obj or {}).get("published", True) and reported is not None and reported != dataset.row_count:
            raise dg.Failure(f"{dataset.uri}: the step reported {reported} rows, its manifest says "
                             f"{dataset.row_count}", allow_retries=False)
        context.add_output_metadata({
            "dagster/row_count": dataset.row_count,
            "path": dg.MetadataValue.path(dataset.uri),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c["name"], c["type"]) for c in dataset.schema]),
            "published_at": dataset.manifest.get("published_at", ""),
        })

    def load_input(self, context: dg.InputContext) -> LakeDataset | list[LakeDataset]:
        key = context.asset_key
        if not context.has_asset_partitions:
            return self.published(self.dataset_rel(key, None))
        keys = context.asset_partition_keys
        if len(keys) == 1:
            return self.published(self.dataset_rel(key, keys[0]))
        # A week of days: the days that were published (a week may have gaps).
        return [self.published(rel) for rel in (self.dataset_rel(key, k) for k in keys)
                if self.lake.fs.exists(f"{rel}/{MANIFEST}")]
