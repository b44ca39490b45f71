"""The one-pass staging of regular files (spark_steps/one_pass.py) against the careful
passes, on real Spark in local mode: the same rows, rejects, counts and manifests; which
files take which way; a file that changes between its two reads is not published."""

import gzip
import json

import duckdb
import pytest

from spark_steps import one_pass, stage_file
from spark_steps.contract import INVENTORY, SALES, STORE
from tests.conftest import inventory_row, sales_row

DAYS = ["2024-01-07", "2024-01-08", "2024-01-09"]


def _land(lake, name: str, content: bytes) -> str:
    (lake / "raw").mkdir(parents=True, exist_ok=True)
    (lake / "raw" / name).write_bytes(content)
    return f"raw/{name}"


def _csv(header: str, rows: list[str], newline: str = "\n") -> bytes:
    return (header + newline + newline.join(rows) + newline).encode()


def _dirty_sales(day: str) -> list[str]:
    """Every rule of SPEC §2 once, repeats of a kept key, blank lines."""
    return [sales_row(1, day=day), sales_row(2, day=day, qty="abc"), "", sales_row(3, day=day, store=""),
            sales_row(4, day=day, amt="-1.00"), sales_row(5, day=DAYS[0] if day != DAYS[0] else DAYS[1]),
            "6,10,100", sales_row(1, day=day, qty="9.00"), sales_row(7, day=day, qty="x"), sales_row(7, day=day),
            sales_row(7, day=day), sales_row(8, day=day, qty="1e3"), sales_row(9, day=day)]


def _batches():
    sales = {day: (f"sales_{day}.csv.gz", gzip.compress(_csv(SALES.header, _dirty_sales(day)), mtime=0))
             for day in DAYS}
    sales[DAYS[1]] = (f"sales_{DAYS[1]}.csv", _csv("\ufeff" + SALES.header, _dirty_sales(DAYS[1]), "\r\n"))
    inventory = {day: (f"inventory_{day}.csv", _csv(INVENTORY.header, [
        inventory_row(day=day, prod=1), inventory_row(day=day, prod=2, oos="2"), inventory_row(day=day, prod=1),
        inventory_row(day=day, prod=3, on_hand="")])) for day in DAYS}
    store = {day: (f"store_{day}.csv", _csv(STORE.header, [_store(1, f"v{n}"), _store(1, "again"), "x"]))
             for n, day in enumerate(DAYS)}
    return {"sales": sales, "inventory": inventory, "store": store}


def _store(key, name) -> str:
    return f"{key},S{key},{name},1 Main St,Town,East,US,United States,00001,State,ST,A,Anchor,false,1000.000,1,M,1,SM,40.000000,-70.000000"


def _stage(spark, lake, table, files):
    batch = [{"source": _land(lake, name, body), "business_date": day} for day, (name, body) in files.items()]
    return stage_file.run(spark, lake=str(lake), table=table, files=batch, run_id="r")["outcomes"]


def _stored(partition) -> list[tuple]:
    """The rows of a published dataset in the order the file holds them."""
    with duckdb.connect() as con:
        return con.sql(f"SELECT * FROM read_parquet('{partition}/*.parquet', hive_partitioning = false)").fetchall()


def _published(lake) -> dict[str, tuple]:
    """Every published dataset below the lake: its files, stored rows and manifest."""
    out = {}
    for manifest in sorted(lake.rglob("_manifest.json")):
        partition = manifest.parent
        doc = json.loads(manifest.read_text())
        doc.pop("published_at")
        doc["path"] = doc["path"].replace(str(lake), "LAKE")
        out[str(partition.relative_to(lake))] = (sorted(p.name for p in partition.iterdir()), _stored(partition), doc)
    return out


def _strip(outcomes) -> list:
    return [({k: v for k, v in o["result"].items() if k not in ("output_path", "rejects_path")}, o["failure"])
            for o in outcomes]


@pytest.mark.parametrize("size", ["small input", "large input"])
def test_regular_files_in_one_pass_equal_the_careful_passes(spark, tmp_path, monkeypatch, size):
    """Dirty but regular files (every reject reason, repeats, blank lines, CRLF, a BOM, gzip
    and plain, a snapshot) staged in one pass publish exactly what the careful passes do.
    Repeats are found in this process for a small input, by a Spark aggregate for a large
    one (the threshold lowered to take that way with these files)."""
    if size == "large input":
        monkeypatch.setattr(one_pass, "SMALL_INPUT_BYTES", 0)
    careful_calls = []
    real = stage_file._stage_carefully
    monkeypatch.setattr(stage_file, "_stage_carefully", lambda *a: careful_calls.append(a[4]) or real(*a))
    fast, careful = tmp_path / "fast", tmp_path / "careful"
    batches = _batches()
    fast_out = {table: _stage(spark, fast, table, files) for table, files in batches.items()}
    assert careful_calls == []  # every file was regular
    monkeypatch.setattr(stage_file, "ONE_PASS", False)
    careful_out = {table: _stage(spark, careful, table, files) for table, files in batches.items()}

    assert {t: _strip(o) for t, o in fast_out.items()} == {t: _strip(o) for t, o in careful_out.items()}
    assert _published(fast) == _published(careful)
    first = fast_out["sales"][0]["result"]
    assert (first["rows_read"], first["rows_accepted"]) == (12, 3)
    assert first["rejects_by_reason"] == {"business_date_mismatch": 1, "duplicate_key": 2, "negative_value": 1,
                                          "required_null": 1, "unparseable_value": 3, "wrong_field_count": 1}
    rejects = _stored(fast / "rejects" / "sales" / f"business_date={DAYS[0]}")
    assert [(r[1], r[2]) for r in rejects] == [  # file order, line numbers counting the blank line
        (3, "unparseable_value"), (5, "required_null"), (6, "negative_value"), (7, "business_date_mismatch"),
        (8, "wrong_field_count"), (9, "duplicate_key"), (10, "unparseable_value"), (12, "duplicate_key"),
        (13, "unparseable_value")]
    assert rejects[5][3] == "trans_id=1 repeats line 2" and rejects[4][4] == "6,10,100"
    assert [r[-1] for r in _stored(fast / "staged" / "sales" / f"business_date={DAYS[0]}")] == [2, 11, 14]
    assert [o["result"]["published"] for o in fast_out["store"]] == [False, False, True]
    # no staging directory is left behind
    assert [p for p in fast.rglob(".tmp-*")] == []


def test_irregular_files_take_the_careful_passes_and_the_others_stay_in_one_pass(spark, tmp_path, monkeypatch):
    careful_calls = []
    real = stage_file._stage_carefully
    monkeypatch.setattr(stage_file, "_stage_carefully", lambda *a: careful_calls.append(list(a[4])) or real(*a))
    quoted_header = ",".join(f'"{c}"' for c in SALES.header.split(","))
    multiline = '2,10,100,2024-01-10,3600,1.00,5.00,5.00,0.00,3.00,0.00,"0.5\n0"'  # a record over two lines
    files = {
        "2024-01-07": ("sales_2024-01-07.csv.gz", gzip.compress(_csv(SALES.header, [sales_row(1, day="2024-01-07")]))),
        "2024-01-08": ("sales_2024-01-08.csv", _csv(quoted_header, [sales_row(1, day="2024-01-08")])),
        "2024-01-09": ("sales_2024-01-09.csv", _csv(SALES.header, [sales_row(1, day="2024-01-09")]) + b"\xff\n"),
        "2024-01-10": ("sales_2024-01-10.csv", _csv(SALES.header, [multiline, sales_row(3, day="2024-01-10")])),
        "2024-01-11": ("sales_2024-01-11.csv", _csv(SALES.header, [sales_row(1, day="2024-01-11")])),
    }
    out = _stage(spark, tmp_path, "sales", files)
    assert careful_calls == [[1, 2, 3]]  # the quoted header, the bad byte, the record over two lines
    assert [o["failure"] for o in out][:2] == [None, None] and out[4]["failure"] is None
    assert out[1]["result"]["rows_accepted"] == 1  # a quoted header is a header
    assert out[2]["failure"].startswith("raw/sales_2024-01-09.csv: not valid UTF-8 on line 3")
    assert (tmp_path / "quarantine" / "sales_2024-01-09.csv").exists()
    assert out[3]["result"]["rows_read"] == 2 and out[3]["result"]["rejects_by_reason"] == {"unparseable_value": 1}


@pytest.mark.parametrize("settings", [
    {"spark.sql.files.maxPartitionBytes": "64"},  # every file split over partitions
    {"spark.sql.files.openCostInBytes": "0", "spark.sql.files.minPartitionNum": "1"},  # all files in one partition
], ids=["split", "packed"])
def test_files_spark_does_not_read_whole_in_a_partition_take_the_careful_passes(spark, tmp_path, monkeypatch,
                                                                                settings):
    files = {day: (f"sales_{day}.csv", _csv(SALES.header, [sales_row(n, day=day) for n in range(1, 9)]))
             for day in DAYS}
    expected = _strip(_stage(spark, tmp_path / "default", "sales", files))
    careful_calls = []
    real = stage_file._stage_carefully
    monkeypatch.setattr(stage_file, "_stage_carefully", lambda *a: careful_calls.append(list(a[4])) or real(*a))
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        out = _stage(spark, tmp_path / "other", "sales", files)
    finally:
        for key, value in before.items():
            spark.conf.unset(key) if value is None else spark.conf.set(key, value)
    # split: no file starts its own partition; packed: the first of the partition does
    assert [len(c) for c in careful_calls] == ([3] if "spark.sql.files.maxPartitionBytes" in settings else [2])
    assert _strip(out) == expected


def test_a_file_that_changes_between_its_two_reads_is_not_published(spark, tmp_path, monkeypatch):
    """A file with rejects is read twice (the rejected lines again, for their text): when it
    is replaced in between, nothing of it is published and it is not quarantined (its new
    content runs again); the other day of the batch is published."""
    reads = []
    real = one_pass._Pass._numbered

    def numbered(self, fids):
        reads.append(fids)
        if len(reads) == 2:  # the second read: replace the file first
            (tmp_path / "raw" / f"sales_{DAYS[0]}.csv").write_bytes(_csv(SALES.header, [sales_row(5, day=DAYS[0])]))
        return real(self, fids)

    monkeypatch.setattr(one_pass._Pass, "_numbered", numbered)
    files = {DAYS[0]: (f"sales_{DAYS[0]}.csv", _csv(SALES.header, [sales_row(1, day=DAYS[0], qty="x")])),
             DAYS[1]: (f"sales_{DAYS[1]}.csv", _csv(SALES.header, [sales_row(1, day=DAYS[1])]))}
    out = _stage(spark, tmp_path, "sales", files)
    assert reads == [[0, 1], [0]]  # both files, then the one with a reject
    assert out[0]["failure"] == (f"raw/sales_{DAYS[0]}.csv: the file changed while it was being staged: nothing of "
                                 "it is published; it is staged again once it lands complete")
    assert not (tmp_path / "staged" / "sales" / f"business_date={DAYS[0]}").exists()
    assert not (tmp_path / "rejects" / "sales" / f"business_date={DAYS[0]}").exists()
    assert (tmp_path / "raw" / f"sales_{DAYS[0]}.csv").exists() and not (tmp_path / "quarantine").exists()
    assert out[1]["failure"] is None and out[1]["result"]["rows_accepted"] == 1
    assert (tmp_path / "staged" / "sales" / f"business_date={DAYS[1]}" / "_SUCCESS").exists()
