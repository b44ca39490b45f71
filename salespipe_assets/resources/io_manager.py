"""The lake IO manager: Dagster hands assets paths, never rows.

The Spark assets (``stage_day``'s tables, the weekly fact) write the lake themselves -
local Spark, a Connect server or a transient EMR cluster - and their output is what the
step reported: ``{partition: report}`` for a run over a range of partitions. The IO
manager is that lake's gatekeeper:

- ``handle_output`` resolves every partition of the output to its lake dataset (a local
  directory or ``s3://``), checks that the step really published it - the success marker
  and the manifest are there, and the manifest's row count is the one the step reported -
  and records row count, schema, path and publish time as that partition's metadata;
- ``load_input`` gives a downstream asset ``{partition: LakeDataset}`` for the upstream
  partitions it depends on (the days of its weeks, the weeks of its range), or one
  ``LakeDataset`` for a snapshot: where the data is and what it holds, never its rows;
  ``dataframe(spark)`` reads it inside Spark.

``LocalLakeIOManager`` and ``S3LakeIOManager`` differ only in the lake they guard
(``resources_for`` picks the one of the environment's lake).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import dagster as dg

from salespipe_assets.resources.lake import Lake, LocalLake
from spark_steps.contract import checked_date
from spark_steps.lakefs import MANIFEST, SUCCESS

LAKE_IO = "lake_io"  # the resource key the Spark assets' outputs name

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

    @property
    def metadata(self) -> dict:
        """What a materialization of this dataset records."""
        return {
            "dagster/row_count": self.row_count,
            "path": dg.MetadataValue.path(self.uri),
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c["name"], c["type"]) for c in self.schema]),
            "published_at": self.manifest.get("published_at", ""),
        }


def _reported_rows(report: Mapping | None) -> int | None:
    report = report or {}
    return report.get("row_count", report.get("rows_accepted"))


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

    def verified(self, key: dg.AssetKey, partition: str | None, report: Mapping | None) -> LakeDataset:
        """The dataset the step says it published, checked against its manifest."""
        dataset = self.published(self.dataset_rel(key, partition))
        reported = _reported_rows(report)
        if (report or {}).get("published", True) and reported is not None and reported != dataset.row_count:
            raise dg.Failure(f"{dataset.uri}: the step reported {reported} rows, its manifest says "
                             f"{dataset.row_count}", allow_retries=False)
        return dataset

    def handle_output(self, context: dg.OutputContext, obj: Mapping | None) -> None:
        if not context.has_asset_partitions:
            context.add_output_metadata(self.verified(context.asset_key, None, obj).metadata)
            return
        partitions = context.asset_partition_keys
        by_partition = obj if isinstance(obj, Mapping) and set(partitions) <= set(obj) else \
            {p: obj for p in partitions}
        for partition in partitions:
            report = by_partition[partition]
            dataset = self.verified(context.asset_key, partition, report)
            if not (report or {}).get("published", True):
                continue  # e.g. an older dimension snapshot: the newer one it left in place is checked
            if len(partitions) == 1:
                context.add_output_metadata(dataset.metadata)
            else:  # each partition of a range its own row count and path
                context.step_context.add_asset_metadata(
                    dataset.metadata, asset_key=context.asset_key, partition_key=partition)

    def load_input(self, context: dg.InputContext) -> LakeDataset | dict[str, LakeDataset]:
        """A snapshot dataset (a dimension) as one ``LakeDataset``; a partitioned one as
        ``{partition: LakeDataset}`` over the upstream partitions asked for that were
        published (a week's days may have gaps; a range of weeks, weeks not built)."""
        key = context.asset_key
        if "{partition}" not in self.datasets.get(key.to_user_string(), "{partition}"):
            return self.published(self.dataset_rel(key, None))
        keys = context.asset_partition_keys if context.has_asset_partitions else []
        rels = {k: self.dataset_rel(key, k) for k in keys}
        return {k: self.published(rel) for k, rel in rels.items() if self.lake.fs.exists(f"{rel}/{MANIFEST}")}


class LocalLakeIOManager(LakeIOManager):
    """The lake IO manager over a local directory (the embedded default)."""

    lake: LocalLake


def lake_io_manager(lake: Lake) -> LakeIOManager:
    if isinstance(lake, LocalLake):
        return LocalLakeIOManager(lake=lake)
    from salespipe_assets.resources.s3_lake import S3LakeIOManager  # dagster-aws: imported by the aws env only

    return S3LakeIOManager(lake=lake)
