"""SPEC §2 row rules in Spark: type every column, decide each row's fate.

``classify`` returns one DataFrame in which every parsed row carries either no reason
(accepted) or a reason code and a human detail (rejected), so that accepted + rejected
is the input by construction and a single pass feeds both outputs.
"""

from __future__ import annotations

import re

from pyspark.sql import Column, DataFrame, Window
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


def classify(parsed: DataFrame, table: Table, business_date: str | None) -> DataFrame:
    """Parsed rows (see csv_parse.output_schema, without file-error rows) with typed
    columns plus ``reason`` and ``reason_detail`` (both null for accepted rows)."""
    df = parsed.select(
        "_file", "_line", "_row_error", "_raw",
        *[_raw(c.name) for c in table.columns],
        *[typed(c.name, c.type).alias(_typed_name(c.name)) for c in table.columns],
    )
    code: Column = F.lit(None).cast("string")
    detail: Column = F.lit(None).cast("string")
    for cond, reason, text in reversed(_rules(table, business_date)):
        reason_col = F.col("_row_error") if reason == "" else F.lit(reason)
        code = F.when(cond, reason_col).otherwise(code)
        detail = F.when(cond, text).otherwise(detail)
    df = df.withColumn("_pre_reason", code).withColumn("_pre_detail", detail)

    if not table.unique_key:
        return df.withColumnRenamed("_pre_reason", "reason").withColumnRenamed("_pre_detail", "reason_detail")

    # Duplicates are judged among rows that pass every other rule: first in file order wins.
    keys = [F.col(_typed_name(k)) for k in table.unique_key]
    clean = F.col("_pre_reason").isNull()
    window = Window.partitionBy(clean, *keys).orderBy("_line")
    first_line = F.min("_line").over(window)
    is_repeat = clean & (F.row_number().over(window) > 1)
    key_text = F.concat_ws(", ", *[F.concat(F.lit(f"{k}="), _raw(k)) for k in table.unique_key])
    return (
        df.withColumn("reason", F.when(is_repeat, F.lit(REASON_DUPLICATE)).otherwise(F.col("_pre_reason")))
        .withColumn("reason_detail", F.when(
            is_repeat, F.concat(key_text, F.lit(" repeats line "), first_line.cast("string"))
        ).otherwise(F.col("_pre_detail")))
        .drop("_pre_reason", "_pre_detail")
    )


def accepted_rows(classified: DataFrame, table: Table) -> DataFrame:
    return classified.where(F.col("reason").isNull()).select(
        *[F.col(_typed_name(c.name)).alias(c.name) for c in table.columns],
        F.col("_file").alias("source_file"),
        F.col("_line").alias("source_line"),
    )


def rejected_rows(classified: DataFrame, table: Table) -> DataFrame:
    """Rejected rows unchanged (every field as the string read), with where and why."""
    return classified.where(F.col("reason").isNotNull()).select(
        F.col("_file").alias("source_file"),
        F.col("_line").alias("line_number"),
        "reason",
        "reason_detail",
        F.col("_raw").alias("raw_line"),
        *[_raw(c.name) for c in table.columns],
    )
