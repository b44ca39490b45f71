"""Raw landing: the five files upstream drops for each business day (SPEC §1)."""


import dagster as dg

from salespipe_assets.assets.ranges import DAILY_POLICY, materialize
from salespipe_assets.partitions import daily_partitions
from salespipe_assets.resources import Lake
from salespipe_assets.resources.lake import DayFiles
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
    backfill_policy=DAILY_POLICY,
)
def raw_landing(context: dg.AssetExecutionContext, lake: Lake):
    """Registers each day's landed files (path, size, checksum) once all five are present.

    The checksum is the data version of a one-day run, so Dagster marks staged data stale
    when a file is re-sent with new content (a range run has one data version per asset,
    so there the checksum is metadata only). An incomplete day of a range is not
    registered and fails the step, after the complete ones.
    """
    by_table: dict[str, dict[str, dict]] = {t: {} for t in TABLES}
    problems = []
    landed_days = lake.scan_landing().days  # one listing for the whole range
    for partition in context.partition_keys:
        day = landed_days.get(partition, DayFiles(partition))
        if not day.complete:
            missing = [f"missing {t}" for t in day.missing] + day.problems
            problems.append(f"business day {day.day} is incomplete: {'; '.join(missing)}")
            continue
        for table, landed in day.files.items():
            by_table[table][partition] = {
                "path": dg.MetadataValue.path(lake.uri(landed.rel)),
                "size_bytes": landed.size,
                "fingerprint": landed.fingerprint,
            }
    for table, by_partition in by_table.items():
        version = (dg.DataVersion(next(iter(by_partition.values()))["fingerprint"])
                   if len(context.partition_keys) == 1 and by_partition else None)
        yield from materialize(context, raw_key(table), by_partition, data_version=version)
    if problems:
        raise dg.Failure("\n".join(problems), allow_retries=False)
