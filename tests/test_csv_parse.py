"""File-level rules of SPEC §2 and exact line numbers, on the JVM reader (real Spark,
local mode): ``read_lines`` + ``inspect_file`` + ``parse_lines`` of spark_steps/csv_parse."""

import gzip

import pytest

from spark_steps.contract import INVENTORY, SALES
from spark_steps.csv_parse import FileError, inspect_file, parse_lines, read_lines
from tests.conftest import sales_row


def _parse(spark, tmp_path, content: bytes, name="sales_2024-01-08.csv", table=SALES):
    path = tmp_path / name
    path.write_bytes(content)
    lines = read_lines(spark, path.as_uri())
    facts = inspect_file(table, path.as_uri(), lines)
    rows = [r.asDict() for r in parse_lines(lines, table, name, facts.offsets).orderBy("_line").collect()]
    return facts, rows


def _file(rows: list[str], header=SALES.header) -> bytes:
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def test_physical_line_numbers_survive_blank_lines_crlf_and_bad_rows(spark, tmp_path):
    text = (SALES.header + "\r\n" + sales_row(1) + "\r\n\r\n" + "2,10,100\r\n" + "\n"
            + sales_row(3) + "\r\n").encode()
    facts, data = _parse(spark, tmp_path, text)
    # line 1 header, 2 row 1, 3 blank, 4 short row, 5 blank, 6 row 3
    assert facts.rows_read == 3
    by_line = {r["_line"]: r for r in data}
    assert sorted(by_line) == [2, 4, 6]
    assert by_line[2]["trans_id"] == "1" and by_line[6]["trans_id"] == "3"
    assert by_line[4]["_row_error"] == "wrong_field_count" and by_line[4]["_raw"] == "2,10,100"
    assert by_line[2]["_row_error"] is None and by_line[2]["_file"] == "sales_2024-01-08.csv"


def test_quoted_commas_quotes_and_empty_fields(spark, tmp_path):
    _, data = _parse(spark, tmp_path, _file([
        '"1",10,100,2024-01-08,,"1.00",5.00,5.00,,3.00,,',
        '"2",10,100,2024-01-08,"","1.00",5.00,5.00,,3.00,,"a ""b"", c"',
        '3,10,100,2024-01-08,,1.00,5.00,5.00,,3.00,,,',  # 13 fields: the last empty
    ]))
    assert data[0]["trans_id"] == "1" and data[0]["trans_time"] is None and data[0]["discount"] is None
    assert data[0]["sales_qty"] == "1.00" and data[0]["_row_error"] is None
    assert data[1]["trans_time"] is None and data[1]["ship_cost"] == 'a "b", c'
    assert data[2]["_row_error"] == "wrong_field_count" and data[2]["trans_id"] is None


def test_gzip_is_read(spark, tmp_path):
    facts, data = _parse(spark, tmp_path, gzip.compress(_file([sales_row(1)])), name="sales_2024-01-08.csv.gz")
    assert facts.rows_read == 1 and [r["trans_id"] for r in data] == ["1"]


def test_a_plain_file_read_in_several_partitions_keeps_exact_line_numbers(spark, tmp_path):
    # Spark splits a large uncompressed file between the cores (here: 1 MB splits of a
    # 1.4 MB file); lines are numbered across the splits from each partition's count.
    rows = [sales_row(i) if i % 997 else "" for i in range(2, 20_002)]
    path = tmp_path / "sales_2024-01-08.csv"
    path.write_bytes(_file(rows))
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(1 << 20))
    try:
        lines = read_lines(spark, path.as_uri())
        assert lines.rdd.getNumPartitions() > 1
        facts = inspect_file(SALES, path.as_uri(), lines)
        parsed = parse_lines(lines, SALES, path.name, facts.offsets)
        assert facts.rows_read == sum(1 for r in rows if r) == parsed.count()
        assert parsed.where("_line != cast(trans_id as long)").count() == 0
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)


@pytest.mark.parametrize(
    "name, content, reason_start",
    [
        ("sales_2024-01-08.csv.gz", gzip.compress(_file([sales_row(1)] * 50), mtime=0)[:-20], "truncated gzip"),
        ("sales_2024-01-08.csv.gz", b"this is not gzip", "undecodable gzip"),
        ("sales_2024-01-08.csv", b"\n\n", "empty file"),
        ("sales_2024-01-08.csv", b"\n" + _file([sales_row(1)]), "missing header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)], header=SALES.header.replace("sales_qty,", "")), "wrong header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)], header=SALES.header.upper()), "wrong header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)], header=INVENTORY.header), "wrong header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)], header=SALES.header + ",extra"), "wrong header"),
        ("sales_2024-01-08.csv", _file([sales_row(1)]) + b"\xff\xfe,1\n", "not valid UTF-8"),
    ],
    ids=["truncated-gzip", "not-gzip", "blank-lines-only", "blank-first-line", "header-missing-column",
         "header-upper-case", "header-of-inventory", "header-extra-column", "invalid-utf8"],
)
def test_file_level_errors(spark, tmp_path, name, content, reason_start):
    with pytest.raises(FileError) as err:
        _parse(spark, tmp_path, content, name=name)
    assert err.value.reason.startswith(reason_start), err.value.reason


def test_undecodable_byte_reports_its_line(spark, tmp_path):
    content = _file([sales_row(1), sales_row(2)]) + b"3,\xc3\x28,100\n"
    with pytest.raises(FileError) as err:
        _parse(spark, tmp_path, content)
    assert err.value.line == 4 and "line 4" in err.value.reason


def test_utf8_bom_is_not_part_of_the_header(spark, tmp_path):
    facts, data = _parse(spark, tmp_path, b"\xef\xbb\xbf" + _file([sales_row(1)]))
    assert facts.rows_read == 1 and len(data) == 1


def test_a_local_table_keeps_every_value_as_data(spark):
    """The small tables the step joins (file facts, line offsets) are SQL VALUES: quotes,
    backslashes, tabs, non-ASCII and "$" in a lake path come back unchanged, and an empty
    table has the columns and no row."""
    import datetime as dt

    from spark_steps.csv_parse import local_table

    columns = [("i", "int"), ("p", "string"), ("d", "date"), ("b", "boolean")]
    rows = [(1, "file:///tmp/it's a \\ lake/ünï/x.csv", dt.date(2024, 1, 7), True), (2, 'a\tb"c', None, False)]
    assert [tuple(r) for r in local_table(spark, rows, columns).orderBy("i").collect()] == rows
    dollar = [(3, "file:///lake/${user}/x.csv", None, None)]
    assert [tuple(r) for r in local_table(spark, dollar, columns).collect()] == dollar
    empty = local_table(spark, [], columns)
    assert empty.columns == ["i", "p", "d", "b"] and empty.count() == 0
