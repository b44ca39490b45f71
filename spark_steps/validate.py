"""SPEC §2 row rules in Spark: type every column, decide each row's fate.

``verdicts`` gives every parsed row either no reason or the first rule it fails, in a
narrow DataFrame (line number, reason, detail, key); ``duplicate_repeats`` adds the rows
that repeat an earlier key. ``rejected_lines`` is their union; the accepted rows are the
parsed rows *not* in it (an anti-join on the line number) and the rejects the rows in it,
so that accepted + rejected is the input by construction.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from spark_steps.contract import (
    REASON_DUPLICATE,
    REASON_FILE_DATE,
    REASON_FLAG,
    REASON_NEGATIVE,
    REASON_REQUIRED,
    REASON_TYPE,
    Table,
)

INT_PATTERN = r"^[+-]?[0-9]+$"
DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
TYPED_PREFIX = "__typed__"


def spark_type(type_name: str) -> T.DataType:
    if type_name == "int":
        return T.IntegerType()
    if type_name == "bigint":
        return T.LongType()
    if type_name == "date":
        return T.DateType()
    if type_name == "boolean":
        return T.BooleanType()
    if type_name == "string":
        return T.StringType()
    m = re.fullmatch(r"decimal\((\d+),(\d+)\)", type_name)
    if m:
        return T.DecimalType(int(m.group(1)), int(m.group(2)))
    raise ValueError(f"unknown contract type {type_name!r}")


def _raw(name: str) -> Column:
    return F.col(f"`{name}`")


def typed(name: str, type_name: str) -> Column:
    """The value in its contract type, or null when empty or unparseable. Patterns are
    strict (Spark's casts alone would accept '2024-1-5' or ' 12')."""
    raw = _raw(name)
    target = spark_type(type_name)
    if type_name == "string":
        return raw
    if type_name == "boolean":
        low = F.lower(raw)
        return F.when(low == "true", F.lit(True)).when(low == "false", F.lit(False))
    pattern = {"int": INT_PATTERN, "bigint": INT_PATTERN, "date": DATE_PATTERN}.get(type_name, DECIMAL_PATTERN)
    return F.when(raw.rlike(pattern), raw.try_cast(target)).cast(target)


def _typed_name(name: str) -> str:
    return TYPED_PREFIX + name


def _quoted(name: str) -> Column:
    return F.concat(F.lit("'"), F.substring(_raw(name), 1, 80), F.lit("'"))


def _rules(table: Table, business_date: str | None) -> list[tuple[Column, str, Column]]:
    """(condition, reason code, detail) in priority order; a row gets the first that holds."""
    rules: list[tuple[Column, str, Column]] = [
        (F.col("_row_error").isNotNull(), "", F.concat(
            F.lit(f"expected {len(table.columns)} fields, got: "), F.substring("_raw", 1, 200))),
    ]
    for c in table.columns:
        if c.type != "string":
            rules.append((
                _raw(c.name).isNotNull() & F.col(_typed_name(c.name)).isNull(),
                REASON_TYPE,
                F.concat(F.lit(f"{c.name}="), _quoted(c.name), F.lit(f" is not a valid {c.type}")),
            ))
    for name in table.required:
        rules.append((_raw(name).isNull(), REASON_REQUIRED, F.lit(f"{name} is required but empty")))
    for name in table.non_negative:
        rules.append((F.col(_typed_name(name)) < 0, REASON_NEGATIVE,
                      F.concat(F.lit(f"{name}="), _raw(name), F.lit(" is negative"))))
    for name in table.flag_01:
        rules.append((~F.col(_typed_name(name)).isin(0, 1), REASON_FLAG,
                      F.concat(F.lit(f"{name}="), _raw(name), F.lit(" is not 0 or 1"))))
    if table.business_date_column and business_date:
        name = table.business_date_column
        rules.append((F.col(_typed_name(name)) != F.lit(business_date).cast("date"), REASON_FILE_DATE,
                      F.concat(F.lit(f"{name}="), _raw(name), F.lit(f" is not the file's date {business_date}"))))
    return rules


def verdicts(parsed: DataFrame, table: Table, business_date: str | None) -> DataFrame:
    """One narrow row per parsed row (see csv_parse.parse_lines): ``_line``, the first
    failing rule's ``reason`` and ``reason_detail`` (null when every rule but the duplicate
    one passes), and the typed unique-key columns. Narrow on purpose: the caller caches
    it, and the wide rows are parsed again from the cached lines when they are written."""
    typed_cols = {c.name: typed(c.name, c.type) for c in table.columns}
    df = parsed.select(
        "_file", "_line", "_row_error", "_raw",
        *[_raw(c.name) for c in table.columns],
        *[col.alias(_typed_name(name)) for name, col in typed_cols.items()],
    )
    code: Column = F.lit(None).cast("string")
    detail: Column = F.lit(None).cast("string")
    for cond, reason, text in reversed(_rules(table, business_date)):
        reason_col = F.col("_row_error") if reason == "" else F.lit(reason)
        code = F.when(cond, reason_col).otherwise(code)
        detail = F.when(cond, text).otherwise(detail)
    return df.select(
        "_line",
        code.alias("reason"),
        detail.alias("reason_detail"),
        *[F.col(_typed_name(k)) for k in table.unique_key],
    )


def duplicate_repeats(body: DataFrame, table: Table) -> DataFrame | None:
    """Rows (``_line``, ``_first_line``) that repeat the unique key of an earlier row, among
    the rows that pass every other rule (``verdicts`` of the data rows): the first in file
    order is kept. An aggregate of the narrow key columns - only keys that occur twice come
    back to be joined - rather than a window over the wide rows. None without a key."""
    if not table.unique_key:
        return None
    keys = [_typed_name(k) for k in table.unique_key]
    clean = body.where(F.col("reason").isNull()).select("_line", *keys)
    # Renamed, so the join condition cannot mistake the two sides' key columns for each other.
    repeated = (clean.groupBy(*keys).agg(F.min("_line").alias("_first_line"), F.count("*").alias("_n"))
                .where(F.col("_n") > 1)
                .select(*[F.col(k).alias(f"_repeated{i}") for i, k in enumerate(keys)], "_first_line"))
    cond = [F.col(k).eqNullSafe(F.col(f"_repeated{i}")) for i, k in enumerate(keys)]
    return (clean.join(F.broadcast(repeated), cond, "inner")
            .where(F.col("_line") > F.col("_first_line"))
            .select("_line", "_first_line"))


def rejected_lines(body: DataFrame, repeats: DataFrame | None) -> DataFrame:
    """``_line``, ``reason``, ``reason_detail``, ``_first_line`` of every rejected data row:
    those failing a rule, and the repeats (their detail is written with the raw key)."""
    failed = body.where(F.col("reason").isNotNull()).select(
        "_line", "reason", "reason_detail", F.lit(None).cast("long").alias("_first_line"))
    if repeats is None:
        return failed
    return failed.unionByName(repeats.select(
        "_line", F.lit(REASON_DUPLICATE).alias("reason"), F.lit(None).cast("string").alias("reason_detail"),
        "_first_line"))


def _joined(parsed: DataFrame, rejected: DataFrame, how: str, broadcast: bool) -> DataFrame:
    right = F.broadcast(rejected) if broadcast else rejected
    return parsed.join(right, "_line", how)


def accepted_rows(parsed: DataFrame, table: Table, rejected: DataFrame, broadcast: bool = True) -> DataFrame:
    """The data rows not rejected, typed, in contract column names, with where they came from."""
    return _joined(parsed, rejected.select("_line"), "left_anti", broadcast).select(
        *[typed(c.name, c.type).alias(c.name) for c in table.columns],
        F.col("_file").alias("source_file"),
        F.col("_line").alias("source_line"),
    )


def rejected_rows(parsed: DataFrame, table: Table, rejected: DataFrame, broadcast: bool = True) -> DataFrame:
    """Rejected rows unchanged (every field as the string read), with where and why."""
    detail = F.col("reason_detail")
    if table.unique_key:
        key_text = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), _raw(k)) for k in table.unique_key])
        detail = F.coalesce(detail, F.concat(key_text, F.lit(" repeats line "), F.col("_first_line").cast("string")))
    return _joined(parsed, rejected, "inner", broadcast).select(
        F.col("_file").alias("source_file"),
        F.col("_line").alias("line_number"),
        "reason",
        detail.alias("reason_detail"),
        F.col("_raw").alias("raw_line"),
        *[_raw(c.name) for c in table.columns],
    )
