"""Broken and hostile CSV through the real Spark staging step (local mode), issue 18
points 2 and 10: RFC 4180 records (a quoted value may span lines; a quote never closed
is ``unbalanced_quote``), stray quotes, lone CR line ends, control characters in a
header. Counts are also compared with the independent DuckDB reference."""

import json

import duckdb
import pytest

from salespipe_assets.reference import reference_counts
from spark_steps import stage_file
from spark_steps.contract import PRODUCT, SALES
from spark_steps.runtime import StepFailed
from tests.conftest import sales_row

DAY = "2024-01-08"


def _land(lake, table, text: str) -> str:
    (lake / "raw").mkdir(exist_ok=True)
    (lake / "raw" / f"{table}_{DAY}.csv").write_bytes(text.encode())
    return f"raw/{table}_{DAY}.csv"


def _stage(spark, lake, table, source):
    return stage_file.run(spark, lake=str(lake), table=table, source=source, business_date=DAY, run_id="t")


def _rows(path_glob: str, order: str) -> list[dict]:
    with duckdb.connect() as con:
        rel = con.sql(f"SELECT * FROM read_parquet('{path_glob}') ORDER BY {order}")
        return [dict(zip(rel.columns, r)) for r in rel.fetchall()]


def _staged(lake, table):
    where = f"staged/{table}/business_date={DAY}" if table == "sales" else f"curated/{table}"
    return _rows(f"{lake}/{where}/*.parquet", "source_line")


def _rejects(lake, table):
    return _rows(f"{lake}/rejects/{table}/business_date={DAY}/*.parquet", "line_number")


def _product(key, name) -> str:
    return f"{key},{name},1.00,2.00,Brand,1,Active,3,Cat,4,Sub"


def test_a_quoted_value_spanning_lines_is_one_row_numbered_by_its_first_line(spark, tmp_path):
    source = _land(tmp_path, "product", "\n".join([
        PRODUCT.header,
        _product(1, "Plain"),                      # line 2
        _product(2, '"Two\nlines, and ""quotes"""'),  # lines 3-4: one record
        _product(3, '"Three\r\n\nlines"'),        # lines 5-7: CRLF and a blank line inside the value
        _product(4, "After"),                      # line 8
    ]) + "\n")
    result = _stage(spark, tmp_path, "product", source)
    assert (result["rows_read"], result["rows_accepted"], result["rows_rejected"]) == (4, 4, 0)
    staged = _staged(tmp_path, "product")
    assert [(r["source_line"], r["prod_key"]) for r in staged] == [(2, 1), (3, 2), (5, 3), (8, 4)]
    # the line break is kept inside the value; a CRLF inside a quoted value is read as LF
    # (each physical line loses its trailing CR, as every line of the file does)
    assert staged[1]["prod_name"] == 'Two\nlines, and "quotes"'
    assert staged[2]["prod_name"] == "Three\n\nlines"


def test_no_half_of_a_broken_record_is_accepted(spark, tmp_path):
    # A sales value with a line break is one record (lines 3-4), and not a valid decimal:
    # the whole record is rejected once, and neither half becomes a row.
    text = "\n".join([SALES.header, sales_row(1), sales_row(2).rsplit(",", 1)[0] + ',"0\n1.00"', sales_row(3)]) + "\n"
    source = _land(tmp_path, "sales", text)
    result = _stage(spark, tmp_path, "sales", source)
    assert (result["rows_read"], result["rows_accepted"], result["rows_rejected"]) == (3, 2, 1)
    assert [r["source_line"] for r in _staged(tmp_path, "sales")] == [2, 5]
    [reject] = _rejects(tmp_path, "sales")
    assert (reject["line_number"], reject["reason"], reject["ship_cost"]) == (3, "unparseable_value", "0\n1.00")
    counts = reference_counts(tmp_path / "raw")[f"sales_{DAY}.csv"]
    assert (counts["read"], counts["accepted"], counts["rejected"]) == (3, 2, 1)


def test_a_quote_never_closed_is_one_unbalanced_record_to_the_end_of_the_file(spark, tmp_path):
    broken = sales_row(3).rsplit(",", 1)[0] + ',"0'  # opens a quoted value, never closes it
    tail = [sales_row(4), "", sales_row(5)]
    text = "\n".join([SALES.header, sales_row(1), sales_row(2), broken, *tail]) + "\n"
    source = _land(tmp_path, "sales", text)
    result = _stage(spark, tmp_path, "sales", source)
    assert (result["rows_read"], result["rows_accepted"], result["rows_rejected"]) == (3, 2, 1)
    assert result["rejects_by_reason"] == {"unbalanced_quote": 1}
    assert [r["source_line"] for r in _staged(tmp_path, "sales")] == [2, 3]
    [reject] = _rejects(tmp_path, "sales")
    assert reject["line_number"] == 4 and reject["reason"] == "unbalanced_quote"
    assert reject["raw_line"] == "\n".join([broken, *tail])  # nothing lost
    assert "never closed" in reject["reason_detail"] and "\n" not in reject["reason_detail"].split(": ")[0]
    counts = reference_counts(tmp_path / "raw")[f"sales_{DAY}.csv"]
    assert (counts["read"], counts["accepted"], counts["rejected"]) == (3, 2, 1)


def test_a_stray_quote_inside_an_unquoted_field_is_taken_as_it_is(spark, tmp_path):
    # Not at the start of a field, so it opens nothing (as in Python's csv, pyarrow and
    # Spark's CSV reader): the row is its own record; in a string column it is accepted,
    # in a number it is an unparseable value. The next line is still its own row.
    source = _land(tmp_path, "product", "\n".join(
        [PRODUCT.header, _product(1, 'Ab"c'), _product(2, "Next"), _product(3, 'x"y""z'), _product(4, "Last")]) + "\n")
    result = _stage(spark, tmp_path, "product", source)
    assert (result["rows_read"], result["rows_accepted"]) == (4, 4)
    assert [(r["source_line"], r["prod_name"]) for r in _staged(tmp_path, "product")] == [
        (2, 'Ab"c'), (3, "Next"), (4, 'x"y""z'), (5, "Last")]

    lake = tmp_path / "sales_lake"
    lake.mkdir()
    text = "\n".join([SALES.header, sales_row(1, qty='1"0.00'), sales_row(2), sales_row(3, qty='2"0.00')]) + "\n"
    result = _stage(spark, lake, "sales", _land(lake, "sales", text))
    assert (result["rows_read"], result["rows_accepted"], result["rejects_by_reason"]) == (
        3, 1, {"unparseable_value": 2})
    assert [r["line_number"] for r in _rejects(lake, "sales")] == [2, 4]
    counts = reference_counts(lake / "raw")[f"sales_{DAY}.csv"]
    assert (counts["read"], counts["accepted"], counts["rejected"]) == (3, 1, 2)


def _quarantine_reason(spark, lake, text: bytes) -> str:
    (lake / "raw").mkdir(exist_ok=True)
    (lake / "raw" / f"sales_{DAY}.csv").write_bytes(text)
    with pytest.raises(StepFailed) as info:
        _stage(spark, lake, "sales", f"raw/sales_{DAY}.csv")
    why = json.loads((lake / "quarantine" / f"sales_{DAY}.csv.reason.json").read_text())
    assert str(info.value) == f"raw/sales_{DAY}.csv: {why['reason']}"
    assert why["reason"] and "\n" not in str(info.value) and "\r" not in str(info.value)
    return why["reason"]


def test_lone_cr_line_ends_are_named(spark, tmp_path):
    text = "\r".join([SALES.header, sales_row(1), sales_row(2)]) + "\r"
    reason = _quarantine_reason(spark, tmp_path, text.encode())
    one_line = len(text.encode()) - 1  # the trailing CR is dropped like any line end's
    assert reason == (f"lone CR line endings: the file is one line of {one_line} bytes with carriage returns"
                      " inside; lines must end in LF or CRLF")


def test_a_control_character_in_the_header_is_shown_escaped(spark, tmp_path):
    header = SALES.header.replace("prod_key", "prod\r_key")
    reason = _quarantine_reason(spark, tmp_path, (header + "\n" + sales_row(1) + "\n").encode())
    assert reason == f"wrong header: expected {SALES.header!r}, got {header!r}"
    assert "prod\\r_key" in reason


def test_codec_errors_are_read_from_the_message_too():
    # Spark Connect raises errors without py4j objects: the Java class is in the text.
    from spark_steps.csv_parse import FileError, decode_error, root_cause

    class ConnectLike(Exception):
        pass

    text = ("(org.apache.spark.SparkException) Job aborted due to stage failure: ... "
            "java.io.EOFException: Unexpected end of input stream\n\tat java.base/...")
    assert root_cause(ConnectLike(text)) == "java.io.EOFException: Unexpected end of input stream"
    err = decode_error("file:///l/raw/sales_2024-01-08.csv.gz", ConnectLike(text))
    assert isinstance(err, FileError) and err.reason.startswith("truncated gzip")
    zip_text = "SparkException: Task failed: java.util.zip.ZipException: Not in GZIP format"
    assert decode_error("x.csv.gz", ConnectLike(zip_text)).reason == "undecodable gzip: Not in GZIP format"
    other = ConnectLike("java.lang.OutOfMemoryError: Java heap space")
    assert decode_error("x.csv.gz", other) is other
