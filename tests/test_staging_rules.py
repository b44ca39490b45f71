"""SPEC §2 through the real Spark staging step (local mode): every kind of bad row and bad
file, the rejects dataset, quarantine, and idempotent republishing."""

import hashlib
import json

import duckdb
import pytest

from spark_steps import stage_file
from spark_steps.runtime import StepFailed
from tests.conftest import inventory_row, sales_row, write_landing

DAY = "2024-01-08"


def _stage(spark, lake, table, source, day=DAY):
    return stage_file.run(spark, lake=str(lake), table=table, source=source, business_date=day, run_id="test")


def _rows(path_glob: str) -> list[dict]:
    with duckdb.connect() as con:
        rel = con.sql(f"SELECT * FROM read_parquet('{path_glob}')")
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def _rejects(lake, table, day=DAY) -> dict[int, dict]:
    return {r["line_number"]: r for r in _rows(f"{lake}/rejects/{table}/business_date={day}/*.parquet")}


def _staged(lake, table, day=DAY) -> list[dict]:
    return _rows(f"{lake}/staged/{table}/business_date={day}/*.parquet")


SALES_CASES = [
    # (row, expected reason or None) - one line each, in file order from line 2
    (sales_row(1), None),
    (sales_row(2, qty="abc"), "unparseable_value"),            # decimal that is not a number
    (sales_row(3, prod="1.5"), "unparseable_value"),           # int with a fraction
    (sales_row(4, day="2024-02-30"), "unparseable_value"),     # not a calendar date
    (sales_row(5, day="2024-1-8"), "unparseable_value"),       # not ISO
    ("99999999999999999999,10,100,2024-01-08,1,1.00,1,1,0,1,0,0", "unparseable_value"),  # bigint overflow
    (sales_row(7, prod="3000000000"), "unparseable_value"),    # int overflow
    (sales_row(8, store=""), "required_null"),
    (sales_row(9, cost=""), "required_null"),
    (sales_row(10, qty="-1.00"), "negative_value"),
    (sales_row(11, amt="-0.01"), "negative_value"),
    (sales_row(12, cost="-3.00"), "negative_value"),
    (sales_row(13, day="2024-01-09"), "business_date_mismatch"),
    ("14,10,100,2024-01-08,1", "wrong_field_count"),
    (sales_row(1, qty="2.00"), "duplicate_key"),               # repeats trans_id 1 of line 2
    (sales_row(15, qty="2.00", amt="10.00"), None),
    ("16,10,100,2024-01-08,,1.00,,5.00,,3.00,-2.00,", None),   # optional empties; negative margin allowed
    (sales_row(17, qty="x") , "unparseable_value"),
    (sales_row(17), None),                                     # first *valid* trans_id 17 is kept
    (sales_row(17), "duplicate_key"),
]


def test_sales_row_rules(spark, tmp_path):
    source = write_landing(tmp_path, "sales", DAY, [r for r, _ in SALES_CASES])
    result = _stage(spark, tmp_path, "sales", source)

    expected_rejects = {i + 2: reason for i, (_, reason) in enumerate(SALES_CASES) if reason}
    expected_accepted = [i + 2 for i, (_, reason) in enumerate(SALES_CASES) if reason is None]
    rejects = _rejects(tmp_path, "sales")
    assert {line: r["reason"] for line, r in rejects.items()} == expected_rejects
    staged = _staged(tmp_path, "sales")
    assert sorted(r["source_line"] for r in staged) == expected_accepted

    assert result["rows_read"] == len(SALES_CASES)
    assert result["rows_accepted"] == len(expected_accepted)
    assert result["rows_rejected"] == len(expected_rejects)
    assert result["rows_read"] == result["rows_accepted"] + result["rows_rejected"]
    assert result["rejects_by_reason"]["duplicate_key"] == 2

    # rejects are unchanged strings with file, line and a reason that names the problem
    assert rejects[3]["sales_qty"] == "abc" and rejects[3]["source_file"] == f"sales_{DAY}.csv"
    assert "sales_qty='abc'" in rejects[3]["reason_detail"]
    assert rejects[15]["raw_line"] == "14,10,100,2024-01-08,1"
    assert "repeats line 2" in rejects[16]["reason_detail"]
    assert "repeats line 20" in rejects[21]["reason_detail"]

    # accepted rows are typed
    by_id = {r["trans_id"]: r for r in staged}
    assert str(by_id[15]["sales_amt"]) == "10.00"
    assert by_id[16]["trans_time"] is None and str(by_id[16]["sales_mgrn"]) == "-2.00"


INVENTORY_CASES = [
    (inventory_row(prod=1), None),
    (inventory_row(prod=2, oos="2"), "flag_not_0_1"),
    (inventory_row(prod=3, oos=""), "required_null"),
    (inventory_row(prod=4, on_hand="-1.00"), "negative_value"),
    (inventory_row(prod=5, on_order="-5"), "negative_value"),
    (inventory_row(prod=6, promo="yes"), "unparseable_value"),
    (inventory_row(prod=7, day="2024-01-07"), "business_date_mismatch"),
    (inventory_row(prod=1, on_hand="9.00"), "duplicate_key"),
    (inventory_row(prod=8, promo="TRUE"), None),
    (inventory_row(prod=9, on_hand=""), "required_null"),
    (inventory_row(prod=1, store=101), None),                  # same product, other store: not a repeat
]


def test_inventory_row_rules(spark, tmp_path):
    source = write_landing(tmp_path, "inventory", DAY, [r for r, _ in INVENTORY_CASES], gz=True)
    result = _stage(spark, tmp_path, "inventory", source)
    expected = {i + 2: reason for i, (_, reason) in enumerate(INVENTORY_CASES) if reason}
    assert {line: r["reason"] for line, r in _rejects(tmp_path, "inventory").items()} == expected
    staged = _staged(tmp_path, "inventory")
    assert len(staged) == len(INVENTORY_CASES) - len(expected) == result["rows_accepted"]
    first = next(r for r in staged if r["prod_key"] == 1 and r["store_key"] == 100)
    assert str(first["inventory_on_hand_qty"]) == "5.00"  # the first of the repeated key is kept
    assert next(r for r in staged if r["prod_key"] == 8)["promotion_flg"] is True


@pytest.mark.parametrize("content, reason", [
    (b"trans_id,prod_key\n1,2\n", "wrong header"),
    (b"", "empty file"),
])
def test_bad_file_is_quarantined_with_a_reason_and_nothing_published(spark, tmp_path, content, reason):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / f"sales_{DAY}.csv").write_bytes(content)
    with pytest.raises(StepFailed) as info:
        _stage(spark, tmp_path, "sales", f"raw/sales_{DAY}.csv")
    assert f"raw/sales_{DAY}.csv" in str(info.value) and reason in str(info.value)
    assert not (raw / f"sales_{DAY}.csv").exists()
    moved = tmp_path / "quarantine" / f"sales_{DAY}.csv"
    assert moved.read_bytes() == content  # nothing lost
    why = json.loads((tmp_path / "quarantine" / f"sales_{DAY}.csv.reason.json").read_text())
    assert why["file"] == f"raw/sales_{DAY}.csv" and why["reason"].startswith(reason)
    # nothing published: no file (a data file, a manifest, a staging leftover) under staged/ or rejects/
    assert [p for kind in ("staged", "rejects") for p in (tmp_path / kind).rglob("*") if not p.is_dir()] == []


def test_second_bad_file_with_the_same_name_does_not_overwrite_the_first(spark, tmp_path):
    for attempt in (b"first", b"second"):
        (tmp_path / "raw").mkdir(exist_ok=True)
        (tmp_path / "raw" / f"sales_{DAY}.csv").write_bytes(attempt)
        with pytest.raises(StepFailed):
            _stage(spark, tmp_path, "sales", f"raw/sales_{DAY}.csv")
    assert (tmp_path / "quarantine" / f"sales_{DAY}.csv").read_bytes() == b"first"
    assert (tmp_path / "quarantine" / f"sales_{DAY}.csv.2").read_bytes() == b"second"


def test_bad_file_does_not_replace_a_published_partition(spark, tmp_path):
    source = write_landing(tmp_path, "sales", DAY, [sales_row(1), sales_row(2)])
    _stage(spark, tmp_path, "sales", source)
    write_landing(tmp_path, "sales", DAY, [sales_row(1)], header="nonsense")
    with pytest.raises(StepFailed):
        _stage(spark, tmp_path, "sales", source)
    assert len(_staged(tmp_path, "sales")) == 2


def test_republishing_gives_identical_parquet_and_manifest_counts(spark, tmp_path):
    rows = [sales_row(i, qty=f"{i}.00", amt=f"{2 * i}.00") for i in range(1, 40)] + ["bad"]
    source = write_landing(tmp_path, "sales", DAY, rows)
    _stage(spark, tmp_path, "sales", source)
    first = _staged(tmp_path, "sales")
    _stage(spark, tmp_path, "sales", source)
    assert _staged(tmp_path, "sales") == first  # same rows, same order
    partition = tmp_path / "staged" / "sales" / f"business_date={DAY}"
    assert len(list(partition.glob("*.parquet"))) == 1 and (partition / "_SUCCESS").exists()
    manifest = json.loads((partition / "_manifest.json").read_text())
    assert manifest["row_count"] == 39 and manifest["rows_read"] == 40 and manifest["rows_rejected"] == 1
    assert manifest["source_files"][0]["name"] == f"sales_{DAY}.csv"
    landed = (tmp_path / source).read_bytes()
    assert manifest["source_files"][0]["sha256"] == hashlib.sha256(landed).hexdigest()
    assert manifest["source_files"][0]["size"] == len(landed)
    # no temporary or displaced directories are left behind
    assert sorted(p.name for p in partition.parent.iterdir()) == [f"business_date={DAY}"]


def test_the_manifest_carries_the_checksum_of_the_landed_gzip_bytes(spark, tmp_path):
    source = write_landing(tmp_path, "sales", DAY, [sales_row(1), sales_row(2)], gz=True)
    _stage(spark, tmp_path, "sales", source)
    manifest = json.loads((tmp_path / "staged" / "sales" / f"business_date={DAY}" / "_manifest.json").read_text())
    landed = (tmp_path / source).read_bytes()  # compressed: what the sensor fingerprints too
    assert manifest["source_files"] == [{"name": f"sales_{DAY}.csv.gz", "size": len(landed),
                                         "sha256": hashlib.sha256(landed).hexdigest()}]


def test_older_snapshot_does_not_replace_a_newer_dimension(spark, tmp_path):
    store = lambda key, name: f"{key},S{key},{name},1 Main St,Town,East,US,United States,00001,State,ST,A,Anchor,false,1000.000,1,M,1,SM,40.000000,-70.000000"  # noqa: E731
    newer = write_landing(tmp_path, "store", "2024-01-09", [store(1, "new")])
    older = write_landing(tmp_path, "store", "2024-01-08", [store(1, "old"), store(2, "old")])
    assert _stage(spark, tmp_path, "store", newer, day="2024-01-09")["published"] is True
    result = _stage(spark, tmp_path, "store", older, day="2024-01-08")
    assert result["published"] is False and result["rows_accepted"] == 2
    assert [r["store_desc"] for r in _rows(f"{tmp_path}/curated/store/*.parquet")] == ["new"]
