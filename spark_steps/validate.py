"""SPEC §2 row rules in Spark: type every column, decide each row's fate.

``judged`` types every column and gives every parsed row either no reason or the first
rule it fails, in one projection; ``verdict_groups`` is the one narrow aggregate that
counts the reasons and finds the keys seen twice; ``decided`` rejects the repeats. The
accepted rows are the decided rows without a reason and the rejects those with one, so
accepted + rejected is the input by construction.
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


def typed(name: str, type_name: str, plain: Column | None = None) -> Column:
    """The value in its contract type, or null when empty or unparseable. Strict: Spark's
    casts alone would accept '2024-1-5', ' 12', '1e3' or non-ASCII digits. ``plain`` (true
    when the row's numeric fields hold only ASCII digits, signs and points) lets a number
    skip its pattern: on those characters ``try_cast`` is exactly the strict rule."""
    raw = _raw(name)
    target = spark_type(type_name)
    if type_name == "string":
        return raw
    if type_name == "boolean":
        low = F.lower(raw)
        return F.when(low == "true", F.lit(True)).when(low == "false", F.lit(False))
    pattern = {"int": INT_PATTERN, "bigint": INT_PATTERN, "date": DATE_PATTERN}.get(type_name, DECIMAL_PATTERN)
    strict = F.when(raw.rlike(pattern), raw.try_cast(target))
    if plain is None or type_name == "date":
        return strict.cast(target)
    return F.when(plain, raw.try_cast(target)).otherwise(strict).cast(target)


def plain_numbers(table: Table) -> Column | None:
    """True when every int/bigint/decimal field of the row is empty or made of ASCII
    digits, '+', '-' and '.' only (one pattern per row instead of one per field)."""
    numeric = [c.name for c in table.columns if c.type not in ("string", "boolean", "date")]
    if not numeric:
        return None
    return F.concat_ws("", *[_raw(n) for n in numeric]).rlike(r"^[0-9+.\-]*$")


def _typed_name(name: str) -> str:
    return TYPED_PREFIX + name


def _quoted(name: str) -> Column:
    return F.concat(F.lit("'"), F.substring(_raw(name), 1, 80), F.lit("'"))


def _rules(table: Table) -> list[tuple[Column, str, Column]]:
    """(condition, reason code, detail) in priority order; a row gets the first that holds.
    The record's own error (``_row_error``: never-closed quote, field count) comes first."""
    rules: list[tuple[Column, str, Column]] = [(F.col("_row_error").isNotNull(), "", F.col("_row_detail"))]
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
    if table.business_date_column:
        name = table.business_date_column
        rules.append((F.col(_typed_name(name)) != F.col("_day"), REASON_FILE_DATE,
                      F.concat(F.lit(f"{name}="), _raw(name), F.lit(" is not the file's date "),
                               F.col("_day").cast("string"))))
    return rules


def judged(parsed: DataFrame, table: Table) -> DataFrame:
    """``parsed`` (see csv_parse.parse_records, with ``_day``: the file's business date)
    with every column typed (``__typed__<name>``) and the first failing rule's ``reason``
    and ``reason_detail`` (null when every rule but the duplicate one passes): one
    projection of built-ins."""
    plain = plain_numbers(table)
    df = parsed.select("*", *[typed(c.name, c.type, plain).alias(_typed_name(c.name)) for c in table.columns])
    code: Column = F.lit(None).cast("string")
    detail: Column = F.lit(None).cast("string")
    for cond, reason, text in reversed(_rules(table)):
        reason_col = F.col("_row_error") if reason == "" else F.lit(reason)
        code = F.when(cond, reason_col).otherwise(code)
        detail = F.when(cond, text).otherwise(detail)
    return df.select("*", code.alias("reason"), detail.alias("reason_detail"))


def _key_names(table: Table) -> list[str]:
    return [_typed_name(k) for k in table.unique_key]


def verdict_groups(rows: DataFrame, table: Table) -> DataFrame:
    """The narrow aggregate that decides counts and repeats: per file, one group per
    reason of the rejected rows and one per unique key of the rows that pass every other
    rule (``_n`` rows, ``_first_line`` the first in file order); only reason groups and
    keys seen more than once are kept (the first of a key is kept, its repeats rejected)."""
    clean = F.col("reason").isNull()
    keys = [F.when(clean, F.col(k)).alias(k) for k in _key_names(table)]
    groups = rows.groupBy("_fid", "reason", *keys).agg(F.count("*").alias("_n"), F.min("_line").alias("_first_line"))
    return groups.where(~clean | (F.col("_n") > 1)) if table.unique_key else groups.where(~clean)


def count_verdicts(groups: DataFrame) -> dict[int, dict[str, int]]:
    """``{file id: {reason: rows}}`` from ``verdict_groups`` (repeats as duplicate_key)."""
    out: dict[int, dict[str, int]] = {}
    rows = groups.groupBy("_fid", "reason").agg(F.sum("_n").alias("n"), F.count("*").alias("keys")).collect()
    for r in rows:
        reason, n = (r["reason"], r["n"]) if r["reason"] is not None else (REASON_DUPLICATE, r["n"] - r["keys"])
        if n:
            out.setdefault(r["_fid"], {})[reason] = out.get(r["_fid"], {}).get(reason, 0) + n
    return out


def decided(rows: DataFrame, table: Table, groups: DataFrame | None, broadcast: bool = True) -> DataFrame:
    """``rows`` (from ``judged``) with repeats of a kept key rejected as duplicate_key:
    ``_first_line`` is the kept row's line. ``groups`` None: no row repeats a key."""
    if groups is None or not table.unique_key:
        return rows.withColumn("_first_line", F.lit(None).cast("long"))
    keys = _key_names(table)
    # Renamed, so the join condition cannot mistake the two sides' key columns for each other.
    repeated = groups.where(F.col("reason").isNull()).select(
        F.col("_fid").alias("_repeated_fid"), *[F.col(k).alias(f"_repeated{i}") for i, k in enumerate(keys)],
        "_first_line")
    right = F.broadcast(repeated) if broadcast else repeated
    cond = [F.col("_fid") == F.col("_repeated_fid"), F.col("reason").isNull(),
            *[F.col(k).eqNullSafe(F.col(f"_repeated{i}")) for i, k in enumerate(keys)]]
    joined = rows.join(right, cond, "left")
    repeat = F.col("_line") > F.col("_first_line")
    return joined.select(
        *[c for c in rows.columns if c != "reason"],
        F.coalesce(F.col("reason"), F.when(repeat, F.lit(REASON_DUPLICATE))).alias("reason"),
        F.when(repeat, F.col("_first_line")).alias("_first_line"),
    )


def accepted_rows(rows: DataFrame, table: Table) -> DataFrame:
    """The rows no rule rejects (from ``decided``), typed, in contract column names, with
    where they came from (and ``_fid`` for the caller)."""
    return rows.where(F.col("reason").isNull()).select(
        "_fid",
        *[F.col(_typed_name(c.name)).alias(c.name) for c in table.columns],
        F.col("_file").alias("source_file"),
        F.col("_line").alias("source_line"),
    )


def rejected_rows(rows: DataFrame, table: Table) -> DataFrame:
    """Rejected rows unchanged (every field as the string read), with where and why."""
    detail = F.col("reason_detail")
    if table.unique_key:
        key_text = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), _raw(k)) for k in table.unique_key])
        detail = F.coalesce(detail, F.concat(key_text, F.lit(" repeats line "), F.col("_first_line").cast("string")))
    return rows.where(F.col("reason").isNotNull()).select(
        "_fid",
        F.col("_file").alias("source_file"),
        F.col("_line").alias("line_number"),
        "reason",
        detail.alias("reason_detail"),
        F.col("_raw").alias("raw_line"),
        *[_raw(c.name) for c in table.columns],
    )
