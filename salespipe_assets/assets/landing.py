"""Raw landing: the five files upstream drops for each business day (SPEC §1)."""


import dagster as dg

from salespipe_assets.partitions import daily_partitions
from salespipe_assets.resources import Lake
from spark_steps.contract import DAILY_TABLES, TABLES


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(f"raw_{table}")


@dg.multi_asset(
    name="raw_landing",
    partitions_def=daily_partitions,
    specs=[
        dg.AssetSpec(
            raw_key(t),
            group_name="landing",
            description=(
                f"The landed `{t}` file of a business day: "
                + ("that day's rows." if t in DAILY_TABLES else "a full snapshot.")
            ),
            kinds={"csv"},
        )
        for t in TABLES
    ],
)
def raw_landing(context: dg.AssetExecutionContext, lake: Lake):
    """Registers the day's landed files (path, size, checksum) once all five are present.

    The checksum is the data version, so Dagster marks staged data stale when a file
    is re-sent with new content.
    """
    day = lake.day_files(context.partition_key)
    if not day.complete:
        problems = [f"missing {t}" for t in day.missing] + day.problems
        raise dg.Failure(f"business day {day.day} is incomplete: {'; '.join(problems)}", allow_retries=False)
    for table, landed in day.files.items():
        yield dg.MaterializeResult(
            asset_key=raw_key(table),
            data_version=dg.DataVersion(landed.fingerprint),
            metadata={
                "path": dg.MetadataValue.path(lake.uri(landed.rel)),
                "size_bytes": landed.size,
                "fingerprint": landed.fingerprint,
            },
        )
