"""The weekly sales-inventory fact (SPEC §3), one weekly partition per Sunday.

Its metadata is what a person checks in the UI: row count, schema, lake path, the top
rows, a chart of the weekly totals and the rows the week's staged days accepted and
rejected. All of it comes from small aggregates (DuckDB over the published Parquet, the
staged manifests); no row passes through Dagster.
"""

import base64
from xml.sax.saxutils import escape  # nosec B406  # escapes text into an SVG we write; no XML is parsed

import dagster as dg

from salespipe_assets.assets.ranges import WEEKLY_POLICY, check_evaluation, check_outputs, materialize
from salespipe_assets.assets.staging import staged_key, table_schema
from salespipe_assets.partitions import weekly_partitions
from salespipe_assets.resources import Lake, LakeDataset, SparkRuntime
from salespipe_assets.resources.io_manager import LAKE_IO
from spark_steps.build_weekly_fact import FACT_DATASET, partition_path, week_days
from spark_steps.contract import DAILY_TABLES

FACT_KEY = dg.AssetKey("weekly_sales_inventory")
CHART_WEEKS = 12


def _markdown_table(rows: list[dict]) -> str:
    if not rows:
        return "_no rows_"
    cols = list(rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join("" if r[c] is None else str(r[c]) for c in cols) + " |")
    return "\n".join(lines)


def _compact(x: float) -> str:
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= size:
            return f"{x / size:.1f}{suffix}"
    return f"{x:.0f}"


def weekly_totals_svg(totals: list[tuple[str, float]], current: str) -> str:
    """A bar chart of total sales amount per week (``current`` highlighted), as SVG.
    The Dagster UI shows images embedded in markdown metadata, not Vega-Lite specs."""
    width, height, left, top, bottom = 640, 270, 16, 48, 40
    slot = (width - 2 * left) / max(len(totals), 6)  # a few weeks keep bar-sized bars
    peak = max((v for _, v in totals), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="#ffffff"/>',
             f'<text x="{left}" y="18" font-size="13" font-weight="bold">Total sales amount per week</text>',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" stroke="#888"/>']
    for i, (week, value) in enumerate(totals):
        bar = (height - top - bottom) * value / peak
        x, y = left + i * slot + slot * 0.15, height - bottom - bar
        colour = "#4f43dd" if week == current else "#a9a4ee"
        parts += [f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{bar:.1f}" fill="{colour}">'
                  f'<title>{escape(week)}: {value:,.2f}</title></rect>',
                  f'<text x="{x + slot * 0.35:.1f}" y="{y - 4:.1f}" text-anchor="middle">{_compact(value)}</text>',
                  f'<text x="{x + slot * 0.35:.1f}" y="{height - bottom + 16}" text-anchor="middle">{escape(week[5:])}</text>']
    parts.append(f'<text x="{width - left}" y="{height - 6}" text-anchor="end" fill="#555">week starting (MM-DD); '
                 f'highlighted: {escape(current)}</text></svg>')
    return "".join(parts)


def _weekly_totals(lake: Lake, week: str) -> list[tuple[str, float]]:
    """Total sales amount of each published week up to ``week`` (the last CHART_WEEKS),
    from the partitions' manifests: the same on a local or an S3 lake."""
    weeks = [name.removeprefix("week_start=") for name in lake.fs.list_dir(FACT_DATASET)
             if name.startswith("week_start=") and name <= f"week_start={week}"][-CHART_WEEKS:]
    totals = []
    for w in weeks:
        manifest = lake.read_manifest(partition_path(w)) or {}
        if "totals" in manifest:
            totals.append((w, float(manifest["totals"]["total_sales_amt"])))
    return totals


def _staged_rows(staged: dict[str, dict[str, LakeDataset]], week: str) -> dict[str, int]:
    """Rows accepted and rejected by the staging of the week's days, from their manifests."""
    out: dict[str, int] = {}
    for table in DAILY_TABLES:
        manifests = [staged[table][d].manifest for d in week_days(week) if d in staged[table]]
        out[f"{table}_rows_accepted"] = sum(m["rows_accepted"] for m in manifests)
        out[f"{table}_rows_rejected"] = sum(m["rows_rejected"] for m in manifests)
    return out


def _chart_markdown(totals: list[tuple[str, float]], week: str) -> str:
    svg = base64.b64encode(weekly_totals_svg(totals, week).encode()).decode()
    return f"![Total sales amount per week up to {week}](data:image/svg+xml;base64,{svg})"


@dg.asset(
    key=FACT_KEY,
    group_name="sales_inventory",
    partitions_def=weekly_partitions,
    # The week's staged days, as the lake IO manager checked them: {day: LakeDataset}.
    ins={f"staged_{t}": dg.AssetIn(staged_key(t)) for t in DAILY_TABLES},
    io_manager_key=LAKE_IO,
    kinds={"spark", "parquet"},
    description=(
        "One row per (week_start, store_key, prod_key) with the 13 metrics of SPEC §3, "
        "Parquet at `curated/weekly_sales_inventory/week_start=<sunday>/`, published atomically "
        "with a manifest and a success marker."
    ),
    check_specs=[
        # Blocking: a week failing either check is published in the lake but never loads into
        # the catalog, the warehouse or the dashboard (their steps are skipped).
        dg.AssetCheckSpec("unique_keys", asset=FACT_KEY, blocking=True,
                          description="(store_key, prod_key) appears once in the week."),
        dg.AssetCheckSpec("non_negative_measures", asset=FACT_KEY, blocking=True,
                          description="Quantities, amounts, stock and counts are never negative."),
    ],
    backfill_policy=WEEKLY_POLICY,
)
def weekly_sales_inventory(context: dg.AssetExecutionContext, lake: Lake, spark: SparkRuntime,
                           staged_sales: dict[str, LakeDataset], staged_inventory: dict[str, LakeDataset]):
    """Every week of the run in one step (one Spark application) from the staged days it
    was given; each week its own partition, metadata and check results. A week with
    nothing staged gets no materialization and fails the step after the others."""
    staged = {"sales": staged_sales, "inventory": staged_inventory}
    outcomes = _build_weeks(context, spark, lake, context.partition_keys, staged)
    built = {o["result"]["week_start"]: o["result"] for o in outcomes if not o["failure"]}
    failures = [o["failure"] for o in outcomes if o["failure"]]
    yield from materialize(context, FACT_KEY, {week: _metadata(lake, week, r, staged) for week, r in built.items()},
                           reports=built)
    for week, r in built.items():
        yield check_evaluation(context, FACT_KEY, "unique_keys", week, passed=r["row_count"] == r["distinct_keys"],
                               metadata={"rows": r["row_count"], "distinct_keys": r["distinct_keys"]})
        yield check_evaluation(context, FACT_KEY, "non_negative_measures", week,
                               passed=r["rows_with_negative_measure"] == 0,
                               metadata={"rows_with_negative_measure": r["rows_with_negative_measure"]})
    yield from check_outputs(context, [dg.AssetCheckKey(FACT_KEY, n) for n in ("unique_keys", "non_negative_measures")])
    if failures:
        raise dg.Failure("\n".join(failures), allow_retries=False)


def _build_weeks(context, spark: SparkRuntime, lake: Lake, weeks: list[str],
                 staged: dict[str, dict[str, LakeDataset]]) -> list[dict]:
    """``[{"result": ..., "failure": None | "<one line>"}]`` per week, in order."""
    outcomes = spark.run_step(context, "build_weekly_fact", lake=lake.root, week_starts=weeks,
                              staged={t: [d.rel for d in days.values()] for t, days in staged.items()})["outcomes"]
    for week, o in zip(weeks, outcomes):
        if not o["failure"] and not o["result"]["published"]:
            o["failure"] = f"week {week} has no staged sales or inventory to build from"
    return outcomes


def _metadata(lake: Lake, week: str, r: dict, staged: dict[str, dict[str, LakeDataset]]) -> dict:
    return {
        "dagster/row_count": r["row_count"],
        "path": dg.MetadataValue.path(r["path"]),
        "days_with_sales": r["days_with_sales"],
        "days_with_inventory": r["days_with_inventory"],
        **_staged_rows(staged, week),
        "dagster/column_schema": table_schema(r["schema"]),
        "week_totals": dg.MetadataValue.json(r["totals"]),
        "weekly_totals_chart": dg.MetadataValue.md(_chart_markdown(_weekly_totals(lake, week), week)),
        "preview": dg.MetadataValue.md(_markdown_table(r["preview"])),
    }
