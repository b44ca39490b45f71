"""Read a landed CSV file in the JVM: physical line numbers, file-level checks, fields.

Spark's CSV source loses line numbers, so a file is read as text lines
(``lineSep`` "\\n": a lone "\\r" is not a line break, a trailing one is stripped) with
each line's physical number, and the fields of each line are parsed with ``from_csv``.
Everything runs in the JVM (no Python workers); a gzip file is one partition, a large
plain file several, whose lines are numbered from per-partition counts.

Each physical line is one record: quoted values spanning lines are not supported (a
Snowflake unload with the project's file format never writes them); such a line is
rejected as a row with the wrong number of fields. Blank lines are not rows.

``inspect_file`` makes one pass that checks the file as a whole (SPEC §2 file level:
decodable gzip and UTF-8, a header, the right header) and counts its rows;
``parse_lines`` gives every data row, all strings, or ``_row_error`` with the raw line.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from spark_steps.contract import REASON_FIELD_COUNT, Table

META_COLUMNS = ("_file", "_line", "_row_error", "_raw")
_ROW_INDEX_BITS = 33  # monotonically_increasing_id = partition index << 33 | row index
_CORRUPT = "__wrong_field_count__"  # from_csv puts a line whose field count is wrong here


class FileError(Exception):
    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass
class FileFacts:
    rows_read: int
    offsets: dict[int, int] = field(default_factory=dict)  # partition index -> lines before it


def read_lines(spark: SparkSession, path: str) -> DataFrame:
    """``_part``, ``_block`` (where its split starts), ``_row`` (index within the
    partition) and ``value`` (the line without its "\\n" and a trailing "\\r") of every
    physical line, blank ones included."""
    value = F.col("value")
    return spark.read.option("lineSep", "\n").text(path).select(
        F.spark_partition_id().alias("_part"),
        F.input_file_block_start().alias("_block"),
        (F.monotonically_increasing_id().bitwiseAND((1 << _ROW_INDEX_BITS) - 1)).alias("_row"),
        F.when(value.endswith("\r"), F.expr("substring(value, 1, length(value) - 1)")).otherwise(value)
        .alias("value"),
    )


def line_number(offsets: dict[int, int]) -> Column:
    """1-based physical line number from the partition's offset and the row index."""
    offset: Column = F.lit(0)
    for part, before in offsets.items():
        if before:  # a gzip file is one partition: no offset at all
            offset = F.when(F.col("_part") == part, F.lit(before)).otherwise(offset)
    return (offset + F.col("_row") + 1).cast("long")


def inspect_file(table: Table, path: str, lines: DataFrame) -> FileFacts:
    """Rows read of a usable file and how to number its lines; ``FileError`` for an
    unusable one."""
    blank = F.col("value") == ""
    try:
        parts = (
            lines.groupBy("_part")
            .agg(
                F.count("*").alias("lines"),
                F.sum(F.when(~blank, 1).otherwise(0)).alias("non_blank"),
                F.min(F.when(~F.is_valid_utf8("value"), F.col("_row"))).alias("bad_utf8_row"),
                F.min(F.when(~blank, F.col("_row"))).alias("first_non_blank_row"),
                F.min("_block").alias("block"),
            )
            .collect()
        )
    except Exception as exc:  # py4j/Spark errors: the codec's message says what is wrong
        raise _decode_error(path, exc) from None
    parts.sort(key=lambda r: r["block"])
    offsets, before = {}, 0
    for r in parts:
        offsets[r["_part"]] = before
        before += r["lines"]
    bad = [offsets[r["_part"]] + r["bad_utf8_row"] + 1 for r in parts if r["bad_utf8_row"] is not None]
    if bad:
        raise FileError(f"not valid UTF-8 on line {min(bad)}", min(bad))
    non_blank = sum(r["non_blank"] for r in parts)
    if non_blank == 0:
        raise FileError("empty file: no header row")
    first = parts[0]
    if first["first_non_blank_row"] != 0:
        raise FileError("missing header: the file starts with a blank line", 1)
    # The header apart: a string in the aggregate above would make it sort every line.
    header = lines.where((F.col("_part") == first["_part"]) & (F.col("_row") == 0)).select("value").first()
    _check_header(table, header["value"])
    return FileFacts(rows_read=non_blank - 1, offsets=offsets)


def _decode_error(path: str, exc: Exception) -> Exception:
    """A ``FileError`` when reading failed in the gzip codec, else ``exc`` itself."""
    if not path.endswith(".gz"):
        return exc
    cause = _root_cause(exc)
    if cause.startswith("java.io.EOFException"):
        return FileError("truncated gzip: the compressed stream ends before its end marker")
    if cause.startswith(("java.io.IOException", "java.util.zip.")):
        return FileError(f"undecodable gzip: {cause.split(': ', 1)[-1][:200]}")
    return exc


def _root_cause(exc: Exception) -> str:
    """``class: message`` of the innermost Java exception behind a PySpark error."""
    origin = getattr(exc, "_origin", None) or getattr(exc, "java_exception", None)  # converted or raw py4j
    if origin is None:
        return ""
    while origin.getCause() is not None:
        origin = origin.getCause()
    return origin.toString()


def _check_header(table: Table, first_line: str) -> None:
    header_text = first_line[1:] if first_line.startswith("\ufeff") else first_line  # a BOM is no header
    got = next(csv.reader([header_text]), [])
    if got != table.column_names:
        raise FileError(
            f"wrong header: expected {','.join(table.column_names)!r}, got {header_text[:300]!r}", 1
        )


def parse_lines(lines: DataFrame, table: Table, name: str, offsets: dict[int, int]) -> DataFrame:
    """Every data row (not the header, not blank): ``_file``, ``_line``, ``_row_error``,
    ``_raw`` and one string column per contract column (null when empty). A row with the
    wrong number of fields has ``_row_error`` and ``_raw`` (the line) and null columns."""
    cols = table.column_names
    schema = ", ".join(f"`{c}` string" for c in [*cols, _CORRUPT])
    # Empty fields, quoted ("") or not, are null; "" inside quotes is a quote.
    options = {"sep": ",", "quote": '"', "escape": '"', "mode": "PERMISSIVE",
               "columnNameOfCorruptRecord": _CORRUPT}
    rows = (
        lines.select(line_number(offsets).alias("_line"), "value")
        .where((F.col("_line") > 1) & (F.col("value") != ""))
        .select("_line", "value", F.from_csv("value", schema, options).alias("_f"))
    )
    wrong = F.col(f"_f.`{_CORRUPT}`").isNotNull()
    return rows.select(
        F.lit(name).alias("_file"),
        "_line",
        F.when(wrong, F.lit(REASON_FIELD_COUNT)).alias("_row_error"),
        F.when(wrong, F.col("value")).alias("_raw"),
        *[F.when(~wrong, F.col(f"_f.`{c}`")).alias(c) for c in cols],
    )
