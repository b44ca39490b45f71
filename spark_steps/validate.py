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
from spark_steps.csv_parse import local_table

# The contract's strict forms (README, "Parsing"). \z: the end of the value ("$" would also
# match before a final line terminator, and try_cast would then trim "12\r" to 12).
INT_PATTERN = r"^[+-]?[0-9]+\z"
DECIMAL_PATTERN = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)\z"
DATE_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}\z"
PLAIN_PATTERN = r"^[0-9+.-]*\z"  # only the characters on which try_cast is the strict rule
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


# The projections are written as SQL text: one call builds a whole projection (in classic
# PySpark every Column operation is a round trip to the JVM; a table's rules are hundreds).
def sql_str(text: str) -> str:
    """``text`` as a Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _q(name: str) -> str:
    return f"`{name}`"


def typed_sql(name: str, type_name: str, plain: str | None = None) -> str:
    """SQL for the value in its contract type, or null when empty or not in the contract's
    strict form (INT_PATTERN, DECIMAL_PATTERN, DATE_PATTERN): Spark's casts alone would
    accept '2024-1-5', ' 12', '1e3' or non-ASCII digits. ``plain`` (true when the row's
    numeric fields hold only ASCII digits, signs and points) lets a number skip its
    pattern: on those characters ``try_cast`` is exactly the strict rule. (Byte checks
    instead of the patterns - first and last character, no 'e', ASCII - were measured
    slower: each string function costs about what a regex does.)"""
    raw, target = _q(name), spark_type(type_name).simpleString()
    if type_name == "string":
        return raw
    if type_name == "boolean":
        return f"CASE lower({raw}) WHEN 'true' THEN true WHEN 'false' THEN false END"
    pattern = {"int": INT_PATTERN, "bigint": INT_PATTERN, "date": DATE_PATTERN}.get(type_name, DECIMAL_PATTERN)
    strict = f"CASE WHEN {raw} RLIKE {sql_str(pattern)} THEN try_cast({raw} AS {target}) END"
    if plain is None or type_name == "date":
        return strict
    return f"CASE WHEN {plain} THEN try_cast({raw} AS {target}) ELSE {strict} END"


def plain_numbers_sql(table: Table) -> str | None:
    """True when every int/bigint/decimal field of the row is empty or made of ASCII
    digits, '+', '-' and '.' only (one pattern per row instead of one per field)."""
    numeric = [c.name for c in table.columns if c.type not in ("string", "boolean", "date")]
    if not numeric:
        return None
    return f"concat_ws('', {', '.join(_q(n) for n in numeric)}) RLIKE {sql_str(PLAIN_PATTERN)}"


def _typed_name(name: str) -> str:
    return TYPED_PREFIX + name


def _rules(table: Table) -> list[tuple[str, str, str]]:
    """SQL (condition, reason code, detail) in priority order; a row gets the first that
    holds. The record's own error (``_row_error``: never-closed quote, field count) first."""
    t = lambda name: _q(_typed_name(name))  # noqa: E731
    rules = [("_row_error IS NOT NULL", "_row_error", "_row_detail")]
    for c in table.columns:
        if c.type != "string":
            rules.append((f"{_q(c.name)} IS NOT NULL AND {t(c.name)} IS NULL", sql_str(REASON_TYPE),
                          f"concat({sql_str(c.name + '=')}, '\\'', substring({_q(c.name)}, 1, 80), '\\'', "
                          f"{sql_str(' is not a valid ' + c.type)})"))
    for name in table.required:
        rules.append((f"{_q(name)} IS NULL", sql_str(REASON_REQUIRED), sql_str(f"{name} is required but empty")))
    for name in table.non_negative:
        rules.append((f"{t(name)} < 0", sql_str(REASON_NEGATIVE),
                      f"concat({sql_str(name + '=')}, {_q(name)}, ' is negative')"))
    for name in table.flag_01:
        rules.append((f"NOT ({t(name)} IN (0, 1))", sql_str(REASON_FLAG),
                      f"concat({sql_str(name + '=')}, {_q(name)}, ' is not 0 or 1')"))
    if table.business_date_column:
        name = table.business_date_column
        rules.append((f"{t(name)} != _day", sql_str(REASON_FILE_DATE),
                      f"concat({sql_str(name + '=')}, {_q(name)}, ' is not the file\\'s date ', cast(_day AS string))"))
    return rules


def judged(parsed: DataFrame, table: Table) -> DataFrame:
    """``parsed`` (see csv_parse.parse_records, with ``_day``: the file's business date)
    with every column typed (``__typed__<name>``) and the first failing rule's ``reason``
    and ``reason_detail`` (null when every rule but the duplicate one passes): one
    projection of built-ins."""
    plain = plain_numbers_sql(table)
    if plain:
        parsed = parsed.selectExpr("*", f"{plain} AS _plain")
    df = parsed.selectExpr("*", *[f"{typed_sql(c.name, c.type, '_plain' if plain else None)} AS "
                                  f"{_q(_typed_name(c.name))}" for c in table.columns])
    rules = _rules(table)
    code = "CASE " + " ".join(f"WHEN {cond} THEN {reason}" for cond, reason, _ in rules) + " END"
    detail = "CASE " + " ".join(f"WHEN {cond} THEN {text}" for cond, _, text in rules) + " END"
    return df.selectExpr("*", f"{code} AS reason", f"{detail} AS reason_detail")


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


def collected_verdicts(rows: DataFrame, table: Table) -> tuple[dict[int, dict[str, int]], DataFrame]:
    """``verdict_groups`` collected (one action; for inputs whose groups are few): the
    counts as ``count_verdicts`` gives them, and the repeated keys as a local table for
    ``decided``."""
    groups = verdict_groups(rows, table).collect()
    out: dict[int, dict[str, int]] = {}
    for g in groups:  # a key group is kept only when seen twice, so every n here is > 0
        reason, n = (g["reason"], g["_n"]) if g["reason"] is not None else (REASON_DUPLICATE, g["_n"] - 1)
        by_reason = out.setdefault(g["_fid"], {})
        by_reason[reason] = by_reason.get(reason, 0) + n
    keys = _key_names(table)
    repeated = repeated_keys(rows.sparkSession, table, [(g["_fid"], tuple(g[k] for k in keys), g["_n"], g["_first_line"])
                                                        for g in groups if g["reason"] is None])
    return out, repeated


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


def staged_columns(table: Table) -> list[str]:
    """SQL of a judged row as the staged dataset holds it (``_fid`` kept for the caller):
    typed, in contract column names, with where it came from."""
    return ["_fid", *[f"{_q(_typed_name(c.name))} AS {_q(c.name)}" for c in table.columns],
            "_file AS source_file", "_line AS source_line"]


def accepted_rows(rows: DataFrame, table: Table) -> DataFrame:
    """The rows no rule rejects (from ``decided``), typed, in contract column names, with
    where they came from (and ``_fid`` for the caller)."""
    return rows.where("reason IS NULL").selectExpr(*staged_columns(table))


def staged_schema(table: Table) -> T.StructType:
    """The schema of ``accepted_rows`` without ``_fid``: the staged dataset's."""
    return T.StructType([*[T.StructField(c.name, spark_type(c.type)) for c in table.columns],
                         T.StructField("source_file", T.StringType()), T.StructField("source_line", T.LongType())])


def rejects_schema(table: Table) -> T.StructType:
    """The schema of ``rejected_rows`` without ``_fid``: the rejects dataset's."""
    fixed = [("source_file", T.StringType()), ("line_number", T.LongType()), ("reason", T.StringType()),
             ("reason_detail", T.StringType()), ("raw_line", T.StringType())]
    return T.StructType([*[T.StructField(n, t) for n, t in fixed],
                         *[T.StructField(c.name, T.StringType()) for c in table.columns]])


def repeated_keys(spark, table: Table, groups: list[tuple]) -> DataFrame:
    """Keys seen more than once, as ``decided`` takes them: ``groups`` are ``(file id,
    (key values...), rows with that key, first line)``; a local table (no Spark job)."""
    types = {c.name: c.type for c in table.columns}
    return local_table(
        spark, [(fid, None, *key, n, first) for fid, key, n, first in groups],
        [("_fid", "int"), ("reason", "string"), *[(_typed_name(k), types[k]) for k in table.unique_key],
         ("_n", "bigint"), ("_first_line", "bigint")])


def rejected_rows(rows: DataFrame, table: Table) -> DataFrame:
    """Rejected rows unchanged (every field as the string read), with where and why."""
    detail = "reason_detail"
    if table.unique_key:
        key_text = ", ".join(f"concat({sql_str(k + '=')}, {_q(k)})" for k in table.unique_key)
        detail = (f"coalesce(reason_detail, concat(concat_ws(', ', {key_text}), ' repeats line ', "
                  "cast(_first_line AS string)))")
    return rows.where("reason IS NOT NULL").selectExpr(
        "_fid",
        "_file AS source_file",
        "_line AS line_number",
        "reason",
        f"{detail} AS reason_detail",
        "_raw AS raw_line",
        *[_q(c.name) for c in table.columns],
    )
