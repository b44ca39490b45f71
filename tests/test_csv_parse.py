"""File-level rules of SPEC §2 and exact line numbers, on the parser alone (no Spark)."""

import gzip
import json

import pyarrow as pa
import pytest

from spark_steps.contract import INVENTORY, SALES
from spark_steps.csv_parse import parse_file
from tests.conftest import sales_row


def _parse(content: bytes, name="sales_2024-01-08.csv", table=SALES):
    table_ = pa.Table.from_batches(list(parse_file(table, name, content)))
    rows = table_.to_pylist()
    status, data = rows[0], rows[1:]
    return status, data


def _file(rows: list[str], header=SALES.header) -> bytes:
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def test_physical_line_numbers_survive_blank_lines_crlf_and_bad_rows():
    text = (SALES.header + "\r\n" + sales_row(1) + "\r\n\r\n" + "2,10,100\r\n" + "\n"
            + sales_row(3) + "\r\n").encode()
    status, data = _parse(text)
    assert status["_file_error"] is None
    # line 1 header, 2 row 1, 3 blank, 4 short row, 5 blank, 6 row 3
    assert json.loads(status["_raw"])["rows_read"] == 3
    by_line = {r["_line"]: r for r in data}
    assert sorted(by_line) == [2, 4, 6]
    assert by_line[2]["trans_id"] == "1" and by_line[6]["trans_id"] == "3"
    assert by_line[4]["_row_error"] == "wrong_field_count" and by_line[4]["_raw"] == "2,10,100"


def test_quoted_commas_and_empty_fields():
    status, data = _parse(_file(['"1",10,100,2024-01-08,,"1.00",5.00,5.00,,3.00,,']))
    row = data[0]
    assert row["trans_id"] == "1" and row["trans_time"] is None and row["discount"] is None


def test_gzip_is_read_and_checksummed():
    content = gzip.compress(_file([sales_row(1)]))
    status, data = _parse(content, name="sales_2024-01-08.csv.gz")
    facts = json.loads(status["_raw"])
    assert facts["size"] == len(content) and len(facts["sha256"]) == 64
    assert [r["trans_id"] for r in data] == ["1"]


@pytest.mark.parametrize(
    "name, content, reason_start",
    [
        ("sales_2024-01-08.csv.gz", gzip.compress(_file([sales_row(1)] * 50))[:-20], "truncated gzip"),
        ("sales_2024-01-08.csv.gz", b"this is not gzip", "undecodable gzip"),
        ("sales_2024-01-08.csv", b"", "empty file"),
        ("sales_2024-01-08.csv", b"\n\n", "empty file"),
        ("sales_2024-01-08.csv", b"\n" + _file([sales_row(1)]), "missing header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)], header=SALES.header.replace("sales_qty,", "")), "wrong header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)], header=SALES.header.upper()), "wrong header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)], header=INVENTORY.header), "wrong header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)], header=SALES.header + ",extra"), "wrong header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)]) + b"\xff\xfe,1\n", "not valid UTF-8"),
    ],
)
def test_file_level_errors(name, content, reason_start):
    status, data = _parse(content, name=name)
    assert status["_file_error"].startswith(reason_start), status["_file_error"]
    assert data == []  # nothing from a bad file goes on


def test_undecodable_byte_reports_its_line():
    content = _file([sales_row(1), sales_row(2)]) + b"3,\xc3\x28,100\n"
    status, _ = _parse(content)
    assert json.loads(status["_raw"])["error_line"] == 4


def test_utf8_bom_is_not_part_of_the_header():
    status, data = _parse(b"\xef\xbb\xbf" + _file([sales_row(1)]))
    assert status["_file_error"] is None and len(data) == 1
