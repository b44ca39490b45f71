"""Files mode of the staging step (issue 14): several days of one table in one call, read
together, while each day keeps its own line numbers, rejects, manifest and atomic publish;
a bad file is quarantined and reported, the others staged. Real Spark in local mode; the
single-file step is the yardstick."""

import gzip
import json

import duckdb
import pytest

from spark_steps import stage_file
from spark_steps.contract import SALES, STORE
from tests.conftest import sales_row

DAYS = ["2024-01-07", "2024-01-08", "2024-01-09"]


def _land(lake, name: str, content: bytes) -> str:
    (lake / "raw").mkdir(parents=True, exist_ok=True)
    (lake / "raw" / name).write_bytes(content)
    return f"raw/{name}"


def _rows(path_glob: str, order: str) -> list[tuple]:
    with duckdb.connect() as con:
        return con.sql(f"SELECT * FROM read_parquet('{path_glob}', hive_partitioning = false) ORDER BY {order}").fetchall()


def _partition(lake, kind: str, table: str, day: str, order: str) -> list[tuple]:
    return _rows(f"{lake}/{kind}/{table}/business_date={day}/*.parquet", order)


def _manifest(lake, kind: str, table: str, day: str) -> dict:
    doc = json.loads((lake / kind / table / f"business_date={day}" / "_manifest.json").read_text())
    doc.pop("published_at")
    doc["path"] = doc["path"].replace(str(lake), "LAKE")
    return doc


def _sales_files():
    header = SALES.header
    day1 = [sales_row(1, day=DAYS[0]), "", sales_row(2, day=DAYS[0], qty="x"), sales_row(1, day=DAYS[0]),
            sales_row(3, day=DAYS[0])]
    day3 = [sales_row(1, day=DAYS[2]), sales_row(2, day=DAYS[2], amt="-1.00"), "", "",
            sales_row(4, day=DAYS[1])]
    return {
        DAYS[0]: (f"sales_{DAYS[0]}.csv", (header + "\n" + "\n".join(day1) + "\n").encode()),
        DAYS[1]: (f"sales_{DAYS[1]}.csv", ("trans_id,nonsense\n" + sales_row(1, day=DAYS[1]) + "\n").encode()),
        DAYS[2]: (f"sales_{DAYS[2]}.csv.gz", gzip.compress((header + "\r\n" + "\r\n".join(day3) + "\r\n").encode())),
    }


@pytest.fixture(params=["one pass", "careful, small input", "careful, large input"])
def input_size(request, monkeypatch):
    """Every way the step stages a batch: regular files in one pass (one_pass.py), and with
    that switched off the careful passes (which take the files one_pass finds irregular):
    small inputs (not shuffled, file facts joined from a broadcast table) and large ones
    (spread over the cores, file facts as literals; the threshold is lowered to take that
    path with these small files)."""
    if request.param != "one pass":
        monkeypatch.setattr(stage_file, "ONE_PASS", False)
    if request.param == "careful, large input":
        monkeypatch.setattr(stage_file, "SPREAD_ABOVE_BYTES", 0)
    return request.param


def test_three_days_in_one_call_equal_three_single_file_runs(spark, tmp_path, input_size):
    files = _sales_files()
    multi, single = tmp_path / "multi", tmp_path / "single"
    batch = [{"source": _land(multi, name, content), "business_date": day} for day, (name, content) in files.items()]
    out = stage_file.run(spark, lake=str(multi), table="sales", files=json.dumps(batch), run_id="r")["outcomes"]

    assert [o["result"]["business_date"] for o in out] == DAYS
    bad = out[1]
    assert bad["failure"].startswith(f"raw/sales_{DAYS[1]}.csv: wrong header") and "\n" not in bad["failure"]
    assert bad["result"]["error"]["quarantined_to"] == f"quarantine/sales_{DAYS[1]}.csv"
    assert (multi / "quarantine" / f"sales_{DAYS[1]}.csv").read_bytes() == files[DAYS[1]][1]
    assert not (multi / "staged" / "sales" / f"business_date={DAYS[1]}").exists()
    assert not (multi / "rejects" / "sales" / f"business_date={DAYS[1]}").exists()

    # physical line numbers per file (blank lines counted), worked out by hand
    first, third = out[0]["result"], out[2]["result"]
    assert out[0]["failure"] is None and out[2]["failure"] is None
    assert (first["rows_read"], first["rows_accepted"], first["rejects_by_reason"]) == (
        4, 2, {"duplicate_key": 1, "unparseable_value": 1})
    assert [r[-1] for r in _partition(multi, "staged", "sales", DAYS[0], "source_line")] == [2, 6]
    assert [(r[1], r[2]) for r in _partition(multi, "rejects", "sales", DAYS[0], "line_number")] == [
        (4, "unparseable_value"), (5, "duplicate_key")]
    assert (third["rows_read"], third["rows_accepted"], third["rejects_by_reason"]) == (
        3, 1, {"business_date_mismatch": 1, "negative_value": 1})
    assert [(r[1], r[2]) for r in _partition(multi, "rejects", "sales", DAYS[2], "line_number")] == [
        (3, "negative_value"), (6, "business_date_mismatch")]

    # each good day equals what single-file staging gives
    for i in (0, 2):
        day = DAYS[i]
        name, content = files[day]
        alone = stage_file.run(spark, lake=str(single), table="sales", source=_land(single, name, content),
                               business_date=day, run_id="r")
        strip = lambda r: {k: v for k, v in r.items() if k not in ("output_path", "rejects_path")}  # noqa: E731
        assert strip(out[i]["result"]) == strip(alone)
        for kind, order in (("staged", "source_line"), ("rejects", "line_number")):
            assert _partition(multi, kind, "sales", day, order) == _partition(single, kind, "sales", day, order)
            assert _manifest(multi, kind, "sales", day) == _manifest(single, kind, "sales", day)
            partition = multi / kind / "sales" / f"business_date={day}"
            assert sorted(p.name for p in partition.iterdir()) == ["_SUCCESS", "_manifest.json", "part-00000.parquet"]
    # no staging directory is left behind
    assert sorted(p.name for p in (multi / "staged" / "sales").iterdir()) == [
        f"business_date={DAYS[0]}", f"business_date={DAYS[2]}"]


def _store(key, name) -> str:
    return f"{key},S{key},{name},1 Main St,Town,East,US,United States,00001,State,ST,A,Anchor,false,1000.000,1,M,1,SM,40.000000,-70.000000"


def test_snapshots_in_one_call_publish_only_the_newest_day(spark, tmp_path, input_size):
    header = STORE.header
    contents = {DAYS[0]: [_store(1, "old"), _store(1, "again")], DAYS[2]: [_store(1, "new"), "x"],
                DAYS[1]: [_store(1, "mid"), _store(2, "mid")]}
    batch = [{"source": _land(tmp_path, f"store_{day}.csv", (header + "\n" + "\n".join(rows) + "\n").encode()),
              "business_date": day} for day, rows in contents.items()]
    out = stage_file.run(spark, lake=str(tmp_path), table="store", files=batch)["outcomes"]
    assert [o["failure"] for o in out] == [None, None, None]
    assert [o["result"]["published"] for o in out] == [False, True, False]
    assert [o["result"]["rows_rejected"] for o in out] == [1, 1, 0]
    assert [r[2] for r in _rows(f"{tmp_path}/curated/store/*.parquet", "store_key")] == ["new"]
    assert json.loads((tmp_path / "curated" / "store" / "_manifest.json").read_text())["business_date"] == DAYS[2]
    assert [r[2] for r in _partition(tmp_path, "rejects", "store", DAYS[0], "line_number")] == ["duplicate_key"]
    assert [r[2] for r in _partition(tmp_path, "rejects", "store", DAYS[2], "line_number")] == ["wrong_field_count"]
    assert _partition(tmp_path, "rejects", "store", DAYS[1], "line_number") == []


def test_the_cli_takes_a_files_list(tmp_path):
    import argparse

    parser = argparse.ArgumentParser()
    stage_file.add_arguments(parser)
    files = [{"source": "raw/sales_2024-01-07.csv", "business_date": "2024-01-07"}]
    args = parser.parse_args(["--table", "sales", "--files", json.dumps(files)])
    assert json.loads(args.files) == files and args.source is None


def test_a_truncated_gzip_among_good_files_is_quarantined_and_the_others_staged(spark, tmp_path):
    good = (SALES.header + "\n" + sales_row(1, day=DAYS[0]) + "\n" + sales_row(2, day=DAYS[0]) + "\n").encode()
    broken = gzip.compress((SALES.header + "\n" + "\n".join(sales_row(i, day=DAYS[1]) for i in range(50)) + "\n")
                           .encode(), mtime=0)[:-20]
    batch = [{"source": _land(tmp_path, f"sales_{DAYS[0]}.csv.gz", gzip.compress(good)), "business_date": DAYS[0]},
             {"source": _land(tmp_path, f"sales_{DAYS[1]}.csv.gz", broken), "business_date": DAYS[1]}]
    out = stage_file.run(spark, lake=str(tmp_path), table="sales", files=batch)["outcomes"]
    assert out[0]["failure"] is None and out[0]["result"]["rows_accepted"] == 2
    assert out[1]["failure"].startswith(f"raw/sales_{DAYS[1]}.csv.gz: truncated gzip")
    assert (tmp_path / "quarantine" / f"sales_{DAYS[1]}.csv.gz").read_bytes() == broken
    assert [r[-1] for r in _partition(tmp_path, "staged", "sales", DAYS[0], "source_line")] == [2, 3]


def test_gzip_days_more_than_the_cores_are_written_as_read_each_day_one_sorted_file(spark, tmp_path, input_size):
    """Gzip days, more of them than local[2] has cores: each is read by one task, and the
    writes keep each day in the task that read it (no shuffle), whichever way the batch is
    staged. Each day still publishes one Parquet file, sorted, equal to its single-file run
    (one file, fewer than the cores: spread when large)."""
    days = [f"2024-01-{d:02d}" for d in range(7, 10)]
    contents = {}
    for n, day in enumerate(days):
        rows = [sales_row(100 * n + i, day=day, qty="x" if i == 3 else "1.00") for i in range(8, 0, -1)]
        contents[day] = gzip.compress((SALES.header + "\n" + "\n".join(rows + [rows[0]]) + "\n").encode(), mtime=0)
    multi, single = tmp_path / "multi", tmp_path / "single"
    batch = [{"source": _land(multi, f"sales_{day}.csv.gz", body), "business_date": day} for day, body in contents.items()]
    out = stage_file.run(spark, lake=str(multi), table="sales", files=batch, run_id="r")["outcomes"]
    assert [o["failure"] for o in out] == [None] * len(days)
    for day, o in zip(days, out):
        assert (o["result"]["rows_read"], o["result"]["rows_accepted"]) == (9, 7), o["result"]
        alone = stage_file.run(spark, lake=str(single), table="sales",
                               source=_land(single, f"sales_{day}.csv.gz", contents[day]), business_date=day, run_id="r")
        assert alone["rejects_by_reason"] == o["result"]["rejects_by_reason"] == {"duplicate_key": 1,
                                                                                  "unparseable_value": 1}
        for kind, order in (("staged", "source_line"), ("rejects", "line_number")):
            partition = multi / kind / "sales" / f"business_date={day}"
            assert sorted(p.name for p in partition.iterdir()) == ["_SUCCESS", "_manifest.json", "part-00000.parquet"]
            # the file itself is in line order (not only when a query sorts it)
            with duckdb.connect() as con:
                as_stored = con.sql(f"SELECT * FROM read_parquet('{partition}/*.parquet', hive_partitioning = false)")
                assert as_stored.fetchall() == _partition(multi, kind, "sales", day, order)
            assert _partition(multi, kind, "sales", day, order) == _partition(single, kind, "sales", day, order)
