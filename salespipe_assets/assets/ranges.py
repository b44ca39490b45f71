"""One run over a range of partitions, reported partition by partition.

Every partitioned asset here has a single-run backfill policy: Dagster may hand a step a
range of days (or weeks) at once. A step still reports each partition on its own, so the
Partitions tab looks as after one-partition runs:

- its own materialization with its own metadata (``context.add_asset_metadata(...,
  partition_key=)`` merged into the step's materialization of each partition; when some
  partitions failed, an explicit ``AssetMaterialization`` for each good one only, so a
  failed partition gets none and shows as failed once the step fails);
- its own check results: an ``AssetCheckEvaluation`` per partition with ``partition=``
  and a pointer to that partition's materialization (``AssetCheckResult`` takes the
  partition from a one-partition run only). The check specs stay unpartitioned:
  partitioned specs are a preview in Dagster 1.13 and would have to follow the assets
  when ``build_definitions`` rebinds their partitions; the check's history in the UI
  lists one evaluation per partition and run.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping

import dagster as dg
from dagster._core.definitions.asset_checks.asset_check_evaluation import (  # no public name in 1.13
    AssetCheckEvaluationTargetMaterializationData,
)

from salespipe_assets.settings import Settings


# @asset's backfill_policy parameter is marked beta in Dagster 1.13 (@multi_asset's is
# not); it is the documented way, so its warning would only be noise on every import.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


def backfill_policies(settings: Settings) -> tuple[dg.BackfillPolicy, dg.BackfillPolicy]:
    """(daily, weekly): a range of at most ``days_per_run`` days / ``weeks_per_run`` weeks per
    run. Dagster 1.13 spells a bounded single-run policy ``multi_run(max_partitions_per_run=N)``:
    each run gets one contiguous range (``single_run()`` has no bound)."""
    return (dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.days_per_run),
            dg.BackfillPolicy.multi_run(max_partitions_per_run=settings.weeks_per_run))


DAILY_POLICY, WEEKLY_POLICY = backfill_policies(Settings.from_env())


def materialize(context: dg.AssetExecutionContext, key: dg.AssetKey, by_partition: Mapping[str, dict],
                data_version: dg.DataVersion | None = None, reports: Mapping[str, dict] | None = None) -> Iterator:
    """The materializations of ``key``: one per partition in ``by_partition`` (its metadata).
    A partition of the run left out of ``by_partition`` gets no materialization.

    ``reports`` (the step's report per partition) is the output of an asset stored by the
    lake IO manager, which checks each partition against its manifest. When some partitions
    failed there is no output (an output covers the whole range): the good ones are
    reported one by one and the step fails after them."""
    if set(by_partition) >= set(context.partition_keys):
        for partition, metadata in by_partition.items():
            context.add_asset_metadata(metadata, asset_key=key, partition_key=partition)
        if reports is None:
            yield dg.MaterializeResult(asset_key=key, data_version=data_version)
        else:
            yield dg.MaterializeResult(asset_key=key, data_version=data_version, value=dict(reports))
    else:
        for partition, metadata in by_partition.items():
            yield dg.AssetMaterialization(asset_key=key, partition=partition, metadata=metadata)


def check_evaluation(context: dg.AssetExecutionContext, key: dg.AssetKey, name: str, partition: str,
                     passed: bool, metadata: dict, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
                     ) -> dg.AssetCheckEvaluation:
    """A check result for one partition, pointing at that partition's latest materialization
    (yield it after the materialization)."""
    spec = context.assets_def.get_spec_for_check_key(dg.AssetCheckKey(key, name))
    found = context.instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition]), limit=1).records
    target = (AssetCheckEvaluationTargetMaterializationData(
        storage_id=found[0].storage_id, run_id=found[0].run_id, timestamp=found[0].timestamp)
        if found else None)
    return dg.AssetCheckEvaluation(
        asset_key=key, check_name=name, passed=passed, metadata=metadata, severity=severity,
        target_materialization_data=target, blocking=spec.blocking if spec else False, partition=partition)


def check_outputs(context: dg.AssetExecutionContext, keys: list[dg.AssetCheckKey]) -> Iterator[dg.Output]:
    """The step's outputs for checks reported with ``check_evaluation`` (Dagster expects one
    output per selected check; the evaluations carry the results)."""
    for check_key in keys:
        if check_key in context.selected_asset_check_keys:
            yield dg.Output(None, output_name=context.assets_def.get_output_name_for_asset_check_key(check_key))
