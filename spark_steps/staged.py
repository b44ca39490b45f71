"""Where a staged day goes and what its manifests say: shared by both ways a file is
staged (``one_pass`` for regular files, ``stage_file``'s careful passes for the others)."""

from __future__ import annotations

from spark_steps.contract import CONTRACT, checked_date
from spark_steps.lakefs import MANIFEST, LakeFS


def output_path(table: str, business_date: str) -> str:
    checked_date(business_date, "business date")
    if CONTRACT[table].daily:
        return f"staged/{table}/business_date={business_date}"
    return f"curated/{table}"


def rejects_path(table: str, business_date: str) -> str:
    return f"rejects/{table}/business_date={checked_date(business_date, 'business date')}"


def published_files(fs: LakeFS, spec, results: dict[int, dict]) -> dict[int, bool]:
    """Which files' accepted rows are published: every day of a daily table; of a snapshot
    only the newest day of the batch, and only if not older than what is there."""
    if spec.daily:
        return {i: True for i in results}
    current = fs.read_json(f"{output_path(spec.name, '2000-01-01')}/{MANIFEST}")
    newest = max(results, key=lambda i: results[i]["business_date"])
    return {i: i == newest and (current is None or current["business_date"] <= results[i]["business_date"])
            for i in results}


def manifest(result: dict, dataset: str, count_key: str) -> dict:
    """A staged day's manifest (``publish`` adds the path, schema and time)."""
    return {"business_date": result["business_date"], "run_id": result["run_id"],
            "source_files": [result["source_file"]],
            **{k: result[k] for k in ("rows_read", "rows_accepted", "rows_rejected", "rejects_by_reason")},
            "dataset": dataset, "row_count": result[count_key]}


def record_counts(result: dict, rows_read: int, by_reason: dict[str, int]) -> None:
    rejected = sum(by_reason.values())
    result.update(rows_read=rows_read, rows_accepted=rows_read - rejected, rows_rejected=rejected,
                  rejects_by_reason=dict(sorted(by_reason.items())))


def record_published(fs: LakeFS, table: str, results: dict[int, dict], published: dict[int, bool],
                     schema: list[dict]) -> None:
    for i, r in results.items():
        r.update(output_path=fs.uri(output_path(table, r["business_date"])), published=published[i],
                 rejects_path=fs.uri(rejects_path(table, r["business_date"])), schema=schema)
