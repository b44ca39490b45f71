"""Read landed CSV files in the JVM: physical line numbers, file-level checks, records, fields.

Spark's CSV source loses line numbers, so the files of one table are read together as text
lines (``lineSep`` "\\n": a lone "\\r" is not a line break, a trailing one is stripped) with
the file each line came from and its place in the file; the fields of each record are
parsed with ``from_csv``. Everything runs in the JVM (no Python workers).

Records follow RFC 4180: a quoted value may hold line breaks (a Snowflake unload with
FIELD_OPTIONALLY_ENCLOSED_BY writes them so), and such a record is numbered by its first
physical line. Clean files pay nothing for that: the one pass that checks the files
(``file_groups``) also counts the lines with an odd number of quotes, and only a file that
has some is stitched into records (``records``). A record whose quote is never closed is
rejected as ``unbalanced_quote``. Blank lines outside a quoted value are not rows.
"""

from __future__ import annotations

import csv
import datetime as dt
import urllib.parse
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from spark_steps.contract import REASON_FIELD_COUNT, REASON_UNBALANCED_QUOTE, Table

META_COLUMNS = ("_file", "_line", "_row_error", "_raw")
_ROW_INDEX_BITS = 33  # monotonically_increasing_id = partition index << 33 | row index
_CORRUPT = "__wrong_field_count__"  # from_csv puts a line whose field count is wrong here
BOM = "\ufeff"
LITERAL_ROWS = 2000  # local_table: up to this many rows as SQL VALUES
# A quote between two characters that are neither a quote nor a comma cannot open or
# close a quoted value (RFC 4180): it is taken as it is, like any CSV reader does.
_STRAY_QUOTE = r'(?<=[^",])"(?=[^",])'


class FileError(Exception):
    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass
class FileFacts:
    rows_read: int
    offsets: dict[int, int] = field(default_factory=dict)  # partition index -> lines before it
    multiline: bool = False  # some line has an odd number of quotes: stitch records


def read_lines(spark: SparkSession, paths: str | list[str]) -> DataFrame:
    """``_path`` (the file, as Spark names it), ``_part``, ``_block`` (where its split
    starts), ``_row`` (index within the partition) and ``value`` (the line without its
    "\\n" and a trailing "\\r") of every physical line of every file, blank ones included."""
    value = F.col("value")
    return spark.read.option("lineSep", "\n").text([paths] if isinstance(paths, str) else list(paths)).select(
        F.input_file_name().alias("_path"),
        F.spark_partition_id().alias("_part"),
        F.input_file_block_start().alias("_block"),
        (F.monotonically_increasing_id().bitwiseAND((1 << _ROW_INDEX_BITS) - 1)).alias("_row"),
        F.when(value.endswith("\r"), F.expr("substring(value, 1, length(value) - 1)")).otherwise(value)
        .alias("value"),
    )


def spark_path_name(spark_path: str) -> str:
    """The file name in a path as ``input_file_name`` gives it (a URI, maybe escaped)."""
    return urllib.parse.unquote(spark_path.rstrip("/").rsplit("/", 1)[-1])


def quote_count(value: Column) -> Column:
    return F.length(value) - F.length(F.replace(value, F.lit('"'), F.lit("")))


def file_groups(lines: DataFrame, table: Table) -> list:
    """One aggregate pass over the lines of all files: per (file, partition) its line
    count, non-blank lines, first invalid UTF-8 row, first (non-blank) row, split start,
    whether its first row is exactly the header, and the lines with an odd quote count."""
    value, row = F.col("value"), F.col("_row")
    blank = value == ""
    header = (value == table.header) | (value == BOM + table.header)
    return (
        lines.groupBy("_path", "_part")
        .agg(
            F.count("*").alias("lines"),
            F.sum(F.when(~blank, 1).otherwise(0)).alias("non_blank"),
            F.min(F.when(~F.is_valid_utf8(value), row)).alias("bad_utf8_row"),
            F.min(F.when(~blank, row)).alias("first_non_blank_row"),
            F.min(row).alias("first_row"),
            F.min(F.when(header, row)).alias("header_row"),
            F.min("_block").alias("block"),
            F.sum(F.when(value.contains('"') & (quote_count(value) % 2 == 1), 1).otherwise(0)).alias("odd_quote_lines"),
        )
        .collect()
    )


@dataclass
class FileCheck:
    """What the facts pass says about one file: how to number its lines, or its error."""

    groups: list  # of file_groups rows, in file order
    offsets: dict[int, int] = field(default_factory=dict)  # partition -> (line number - 1) - row
    rows_read: int = 0
    multiline: bool = False
    header_exact: bool = True
    error: FileError | None = None


def check_groups(groups: list) -> FileCheck:
    """File-level checks that need no line text (UTF-8, blank, missing header)."""
    groups = sorted(groups, key=lambda r: r["block"])
    check = FileCheck(groups)
    before = 0
    bad = []
    for g in groups:
        check.offsets[g["_part"]] = before - g["first_row"]
        if g["bad_utf8_row"] is not None:
            bad.append(before + g["bad_utf8_row"] - g["first_row"] + 1)
        before += g["lines"]
    non_blank = sum(g["non_blank"] for g in groups)
    first = groups[0]
    if bad:
        check.error = FileError(f"not valid UTF-8 on line {min(bad)}", min(bad))
    elif non_blank == 0:
        check.error = FileError("empty file: no header row")
    elif first["first_non_blank_row"] != first["first_row"]:
        check.error = FileError("missing header: the file starts with a blank line", 1)
    check.rows_read = max(non_blank - 1, 0)
    check.multiline = any(g["odd_quote_lines"] for g in groups)
    check.header_exact = first["header_row"] == first["first_row"]
    return check


def first_lines(lines: DataFrame, checks: dict[str, FileCheck]) -> dict[str, str]:
    """The first line of each of these files (one small job): ``{spark path: text}``."""
    cond = F.lit(False)
    for path, check in checks.items():
        g = check.groups[0]
        cond = cond | ((F.col("_path") == path) & (F.col("_part") == g["_part"]) & (F.col("_row") == g["first_row"]))
    return {r["_path"]: r["value"] for r in lines.where(cond).select("_path", "value").collect()}


def header_error(table: Table, first_line: str, total_lines: int) -> FileError | None:
    """None when ``first_line`` is the table's header (a BOM and quoted names allowed)."""
    text = first_line[1:] if first_line.startswith(BOM) else first_line
    if "\r" in text and total_lines == 1:
        return FileError(
            f"lone CR line endings: the file is one line of {len(first_line.encode('utf-8', 'replace'))} bytes"
            " with carriage returns inside; lines must end in LF or CRLF", 1)
    try:
        got = next(csv.reader([text]), [])
    except csv.Error:  # a line break inside the header
        got = None
    if got != table.column_names:
        return FileError(f"wrong header: expected {table.header!r}, got {text[:300]!r}", 1)
    return None


def inspect_file(table: Table, path: str, lines: DataFrame) -> FileFacts:
    """Rows read of one usable file and how to number its lines; ``FileError`` for an
    unusable one."""
    try:
        groups = file_groups(lines, table)
    except Exception as exc:  # Spark errors: the codec's message says what is wrong
        raise decode_error(path, exc) from None
    check = check_groups(groups)
    if check.error:
        raise check.error
    if not check.header_exact:
        spark_path = groups[0]["_path"]
        err = header_error(table, first_lines(lines, {spark_path: check})[spark_path],
                           sum(g["lines"] for g in groups))
        if err:
            raise err
    offsets = check.offsets
    rows_read = check.rows_read
    if check.multiline:
        numbered = with_line_numbers(lines, {groups[0]["_path"]: (0, check)})
        rows_read = records(numbered, {0}).count()
    return FileFacts(rows_read=rows_read, offsets=offsets, multiline=check.multiline)


def decode_error(path: str, exc: Exception) -> Exception:
    """A ``FileError`` when reading failed in the gzip codec, else ``exc`` itself."""
    if not path.endswith(".gz"):
        return exc
    cause = root_cause(exc)
    if cause.startswith("java.io.EOFException"):
        return FileError("truncated gzip: the compressed stream ends before its end marker")
    if cause.startswith(("java.io.IOException", "java.util.zip.")):
        return FileError(f"undecodable gzip: {cause.split(': ', 1)[-1][:200]}")
    return exc


_decode_error = decode_error  # the name older callers use


def root_cause(exc: Exception) -> str:
    """``class: message`` of the innermost Java exception behind a PySpark error: from
    py4j when there is one, else from the error text (Spark Connect sends the Java class
    names in the message)."""
    origin = getattr(exc, "_origin", None) or getattr(exc, "java_exception", None)  # converted or raw py4j
    if origin is not None:
        try:
            while origin.getCause() is not None:
                origin = origin.getCause()
            return origin.toString()
        except Exception:  # nosec B110  # a py4j object of a dead gateway: fall back to the text below
            pass
    import re

    found = re.findall(r"((?:[a-z_][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error))(?:: ([^\n]*))?", str(exc))
    java = [(cls, msg) for cls, msg in found if cls.startswith(("java.", "org.apache.hadoop."))]
    if not java:
        return ""
    cls, msg = java[-1]
    return f"{cls}: {msg.strip()}" if msg.strip() else cls


_root_cause = root_cause


def with_line_numbers(lines: DataFrame, files: dict[str, tuple[int, FileCheck]],
                      facts: tuple[dict[int, tuple], list[tuple[str, str]]] | None = None) -> DataFrame:
    """Lines of the given files (``{spark path: (file id, check)}``) with ``_fid`` and
    their 1-based physical ``_line``; lines of other files are dropped. The mapping is a
    small table joined by broadcast. ``facts`` (``({file id: values}, [(name, SQL type)])``):
    more columns per file, carried in the same table (one broadcast, so one Spark job
    fewer per pass than a second table would cost)."""
    spark = lines.sparkSession
    values, extra = facts if facts else ({}, [])
    rows = [(path, g["_part"], fid, check.offsets[g["_part"]], *values.get(fid, ()))
            for path, (fid, check) in files.items() for g in check.groups]
    mapping = local_table(spark, rows, [("_path", "string"), ("_part", "int"), ("_fid", "int"), ("_offset", "bigint"),
                                        *extra])
    return lines.join(F.broadcast(mapping), ["_path", "_part"]).select(
        "_fid", (F.col("_row") + F.col("_offset") + 1).alias("_line"), *[n for n, _ in extra], "value")


def _sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dt.date):
        return f"DATE'{value.isoformat()}'"
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    raise TypeError(f"no SQL literal for {value!r}")


def local_table(spark: SparkSession, rows: list[tuple], columns: list[tuple[str, str]]) -> DataFrame:
    """A small table of ``rows`` (``columns``: [(name, SQL type)]) as an inline ``VALUES``
    table. Unlike a classic session's ``createDataFrame`` (a Python RDD), it is a local
    relation: joining it by broadcast starts no Spark job, and its values are data, not
    constants in the generated code (code that differs per file would be compiled anew)."""
    # "${...}" in SQL text is substituted; thousands of rows are faster parsed as data than as SQL
    if len(rows) > LITERAL_ROWS or any(isinstance(v, str) and "$" in v for row in rows for v in row):
        return spark.createDataFrame(rows, ", ".join(f"`{n}` {t}" for n, t in columns))
    if not rows:
        rows = [tuple(None for _ in columns)]
        where = " WHERE false"
    else:
        where = ""
    values = ", ".join("(" + ", ".join(_sql_literal(v) for v in row) + ")" for row in rows)
    names = ", ".join(f"col{k + 1}" for k in range(len(columns)))
    select = ", ".join(f"CAST(col{k + 1} AS {t}) AS `{n}`" for k, (n, t) in enumerate(columns))
    # SQL text: our own column names and types; every value through _sql_literal (quotes and
    # backslashes escaped; a "$" took the createDataFrame path above).
    return spark.sql(f"SELECT {select} FROM VALUES {values} AS t({names}){where}")  # nosec B608


def records(numbered: DataFrame, multiline_fids: set[int]) -> DataFrame:
    """The data records (not the header, not blank): ``_fid``, ``_line`` (its first
    physical line), ``value`` (lines joined with "\\n"), ``_open`` (its quote is never
    closed) and ``_lines`` (physical lines). Only the files in ``multiline_fids`` are
    stitched (a window over their lines in order); every other line is its own record."""
    # Columns besides _fid, _line and value are facts of the file (one value per _fid): kept.
    facts = [c for c in numbered.columns if c not in ("_fid", "_line", "value")]
    data = numbered.where(F.col("_line") > 1)
    plain = data.where(~F.col("_fid").isin(*multiline_fids)) if multiline_fids else data
    plain = plain.where(F.col("value") != "").select(
        "_fid", "_line", *facts, "value", F.lit(False).alias("_open"), F.lit(1).alias("_lines"))
    if not multiline_fids:
        return plain
    odd = (quote_count(F.regexp_replace("value", _STRAY_QUOTE, "")) % 2).cast("int")
    order = Window.partitionBy("_fid").orderBy("_line")
    marked = (
        data.where(F.col("_fid").isin(*multiline_fids))
        .withColumn("_odd", odd)
        .withColumn("_before", F.coalesce(F.sum("_odd").over(order.rowsBetween(Window.unboundedPreceding, -1)),
                                          F.lit(0)))
        .withColumn("_start", F.max(F.when(F.col("_before") % 2 == 0, F.col("_line")))
                    .over(order.rowsBetween(Window.unboundedPreceding, 0)))
    )
    stitched = (
        marked.groupBy("_fid", "_start", *facts)
        .agg(F.array_sort(F.collect_list(F.struct("_line", "value"))).alias("_parts"),
             F.sum("_odd").alias("_quotes"), F.count("*").alias("_lines"))
        .select(
            "_fid",
            F.col("_start").alias("_line"),
            *facts,
            F.array_join(F.transform("_parts", lambda p: p["value"]), "\n").alias("value"),
            (F.col("_quotes") % 2 == 1).alias("_open"),
            F.col("_lines").cast("int").alias("_lines"),
        )
        .where(F.col("value") != "")
    )
    return plain.unionByName(stitched)


def parse_records(recs: DataFrame, table: Table) -> DataFrame:
    """Every record's fields: ``_row_error`` and ``_row_detail`` for a record that is not
    a row (never-closed quote, wrong field count, line breaks outside quoted values), with
    ``_raw`` (its text) and null columns; else one string column per contract column
    (null when empty). Keeps the other columns of ``recs``. Written as SQL text: one call
    builds the projection (see validate.sql_str)."""
    cols = table.column_names
    schema = ", ".join(f"`{c}` string" for c in [*cols, _CORRUPT])
    # Empty fields, quoted ("") or not, are null; "" inside quotes is a quote.
    options = "map('sep', ',', 'quote', '\"', 'escape', '\"', 'mode', 'PERMISSIVE', " \
              f"'columnNameOfCorruptRecord', '{_CORRUPT}')"
    # A multi-line record whose line breaks did not all land inside parsed values was
    # not one CSV record: no row may come out of it.
    kept = " + ".join(f"coalesce(length(_f.`{c}`) - length(replace(_f.`{c}`, char(10), '')), 0)" for c in cols)
    unbalanced = f"(_open OR (_lines > 1 AND ({kept}) != _lines - 1))"
    wrong = f"_f.`{_CORRUPT}` IS NOT NULL"
    error = (f"CASE WHEN {unbalanced} THEN '{REASON_UNBALANCED_QUOTE}' "
             f"WHEN {wrong} THEN '{REASON_FIELD_COUNT}' END")
    detail = (
        "CASE WHEN _open THEN concat('a quote opened on this line is never closed (', cast(_lines AS string), "
        "' lines to the end of the file): ', substring(value, 1, 200)) "
        f"WHEN {unbalanced} THEN concat('quotes do not pair up over ', cast(_lines AS string), ' lines: ', "
        "substring(value, 1, 200)) "
        f"WHEN {wrong} THEN concat('expected {len(cols)} fields, got: ', substring(value, 1, 200)) END"
    )
    others = [f"`{c}`" for c in recs.columns if c not in ("value", "_open", "_lines")]
    return (
        recs.selectExpr("*", f"from_csv(value, '{schema}', {options}) AS _f")
        .selectExpr("*", f"{error} AS _row_error")
        .selectExpr(
            *others,
            "_row_error",
            f"CASE WHEN _row_error IS NOT NULL THEN {detail} END AS _row_detail",
            "CASE WHEN _row_error IS NOT NULL THEN value END AS _raw",
            *[f"CASE WHEN _row_error IS NULL THEN _f.`{c}` END AS `{c}`" for c in cols],
        )
    )


def parse_lines(lines: DataFrame, table: Table, name: str, offsets: dict[int, int]) -> DataFrame:
    """Every data row of one file (see ``inspect_file``): ``_file``, ``_line``,
    ``_row_error``, ``_raw`` and one string column per contract column (null when empty)."""
    line = F.lit(0)
    for part, offset in offsets.items():  # (line number - 1) - row index, per partition
        line = F.when(F.col("_part") == part, F.lit(offset)).otherwise(line)
    numbered = lines.select(F.lit(0).alias("_fid"), (line + F.col("_row") + 1).cast("long").alias("_line"), "value")
    multiline = numbered.where(quote_count(F.col("value")) % 2 == 1).limit(1).count() > 0
    parsed = parse_records(records(numbered, {0} if multiline else set()), table)
    return parsed.select(F.lit(name).alias("_file"), *[c for c in parsed.columns if c != "_fid"])
