"""A plain DuckDB reference for SPEC §2 (row rules of sales/inventory) and §3 (the fact).

Written from SPEC.md alone, independently of the Spark steps, so it can serve as the
oracle in tests and as the baseline of the benchmark. Column lists and row rules come
from ``spark_steps.contract`` (the contract as data); the logic is this file's own.

Decisions where SPEC is silent (keep in step with the project docs):

* Fields are read as VARCHAR. Empty fields, quoted or not, are null. A value parses only
  if it matches its type strictly (no surrounding spaces, no exponent, integers in
  range); decimals are rounded half away from zero to the column's scale, and the
  non-negative rule is judged on that rounded value (``-0.001`` reads as 0.00: accepted).
* CSV is tokenized by pyarrow as RFC 4180 records (strict field counts, quoted fields may
  hold commas and line breaks: one record, one row); every rule after that is SQL in
  DuckDB. A record with the wrong number of fields (``a,b,c,`` included) is one rejected
  row; so is an unterminated quote, which swallows the rest of the file as one record (the
  project's ``unbalanced_quote``). A quote inside an unquoted field (``ab"c``) is a plain
  character. Blank lines are not rows.
* Invalid UTF-8 anywhere in a file makes it a file-level error (SPEC §1: files are
  UTF-8; "undecodable"), like a bad gzip.
* The header must equal the contract's header byte for byte (after the line ending); a
  UTF-8 BOM or quoted column names make it a wrong header.
* A name like ``sales_*.csv`` whose date part is not ``YYYY-MM-DD`` or not a calendar
  date is a file error; so is a second file for the same table and day
  (``x.csv`` next to ``x.csv.gz``): both are refused rather than counting the day twice.
* A header-only file is valid and has 0 rows.
"""

from __future__ import annotations

import codecs
import datetime as dt
import gzip
import uuid
import zlib
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from spark_steps.contract import CONTRACT, LANDING_NAME, Table

DAILY = ("sales", "inventory")

INT_RE = r"^[+-]?[0-9]+$"
DEC_RE = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


# ---------------------------------------------------------------- file level (§2)

def _file_error(path: Path, table: Table) -> str | None:
    """The file-level reason this file must be skipped, or None when it is readable."""
    m = LANDING_NAME.match(path.name)
    if not m or m["table"] != table.name:
        return f"file name is not {table.name}_<YYYY-MM-DD>.csv[.gz]"
    try:
        dt.date.fromisoformat(m["date"])
    except ValueError:
        return f"date in file name is not a calendar date: {m['date']}"
    opener = gzip.open if path.name.endswith(".gz") else open
    utf8 = codecs.getincrementaldecoder("utf-8")()
    try:
        with opener(path, "rb") as f:
            first = f.readline()
            chunk = first
            while chunk:  # read everything: catches truncated gzip and non-UTF-8 bytes
                utf8.decode(chunk)
                chunk = f.read(1 << 20)
            utf8.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8: {exc}"
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        return f"unreadable gzip: {exc}"
    if not first:
        return "empty file (no header)"
    header = first.removesuffix(b"\n").removesuffix(b"\r")
    if header != table.header.encode():
        return f"wrong header: {header[:200]!r}, expected {table.header!r}"
    return None


def _landing_files(raw_dir: Path) -> tuple[dict[str, list[Path]], dict[str, str]]:
    """Readable files per daily table, and {file name: reason} for the refused ones."""
    good: dict[str, list[Path]] = {t: [] for t in DAILY}
    errors: dict[str, str] = {}
    for t in DAILY:
        paths = sorted({*raw_dir.glob(f"{t}_*.csv"), *raw_dir.glob(f"{t}_*.csv.gz")})
        by_day: dict[str, list[Path]] = {}
        for p in paths:
            reason = _file_error(p, CONTRACT[t])
            if reason:
                errors[p.name] = reason
            else:
                by_day.setdefault(LANDING_NAME.match(p.name)["date"], []).append(p)
        for day, ps in by_day.items():
            if len(ps) > 1:
                for p in ps:
                    errors[p.name] = f"more than one {t} file for {day}: {[q.name for q in ps]}"
            else:
                good[t].extend(ps)
    return good, errors


# ---------------------------------------------------------------- row level (§2)

def _parsed(col: str, typ: str) -> str:
    """SQL for the typed value of raw column r.col: NULL when empty or not parsable."""
    v = f'r."{col}"'
    if typ in ("int", "bigint"):
        sql_type = "INTEGER" if typ == "int" else "BIGINT"
        return f"CASE WHEN regexp_full_match({v}, '{INT_RE}') THEN TRY_CAST({v} AS {sql_type}) END"
    if typ.startswith("decimal"):
        sql_type = typ.upper()  # decimal(p,s): rounds half away from zero to scale s
        return f"CASE WHEN regexp_full_match({v}, '{DEC_RE}') THEN TRY_CAST({v} AS {sql_type}) END"
    if typ == "date":
        return f"CASE WHEN regexp_full_match({v}, '{DATE_RE}') THEN TRY_CAST({v} AS DATE) END"
    if typ == "boolean":
        return f"CASE lower({v}) WHEN 'true' THEN true WHEN 'false' THEN false END"
    return v  # string


def _read_strings(path: Path, t: Table) -> tuple[pa.Table, int]:
    """All fields of one (already checked) file as strings, in file order, and the number
    of records the tokenizer refused (wrong number of fields, e.g. an unterminated quote)."""
    refused = 0

    def count_refused(_row) -> str:
        nonlocal refused
        refused += 1
        return "skip"

    def read(source, block_size: int = 1 << 20) -> pa.Table:
        cols = t.column_names
        return pacsv.read_csv(
            source,  # a .gz name is decompressed by pyarrow
            read_options=pacsv.ReadOptions(column_names=cols, skip_rows=1, block_size=block_size),
            parse_options=pacsv.ParseOptions(newlines_in_values=True,
                                             invalid_row_handler=count_refused),
            convert_options=pacsv.ConvertOptions(
                column_types={c: pa.string() for c in cols},
                null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=True,
            ),
        )

    try:
        return read(path), refused
    except pa.ArrowInvalid as exc:
        if "straddl" not in str(exc):
            raise
    # A record longer than a block (e.g. an unterminated quote that runs to the end of the
    # file): read the whole file as one block.
    refused = 0
    with (gzip.open if path.name.endswith(".gz") else open)(path, "rb") as f:
        data = f.read()
    return read(pa.BufferReader(data), block_size=len(data) + 1), refused


def _load(con: duckdb.DuckDBPyConnection, t: Table, paths: list[Path], p: str,
          errors: dict[str, str]) -> dict[str, int]:
    """Create the temp table {p}_acc_<t> of accepted, typed rows (plus _file, _ord);
    return {file name: rows read} (records parsed + records refused by the tokenizer).
    A file the tokenizer cannot read at all goes to `errors` instead."""
    cols = t.column_names
    parts, n_read = [], {}
    for path in paths:
        try:
            table, refused = _read_strings(path, t)
        except pa.ArrowInvalid as exc:
            errors[path.name] = f"unreadable CSV: {exc}"
            continue
        n_read[path.name] = table.num_rows + refused
        n, day = table.num_rows, LANDING_NAME.match(path.name)["date"]
        parts.append(table.append_column("_file", pa.repeat(pa.scalar(path.name), n))
                          .append_column("_day", pa.repeat(pa.scalar(day), n))
                          .append_column("_ord", pa.array(np.arange(n, dtype=np.int64))))
    schema = pa.schema([*((c, pa.string()) for c in cols),
                        ("_file", pa.string()), ("_day", pa.string()), ("_ord", pa.int64())])
    raw = f"{p}_raw_{t.name}"
    con.register(raw, pa.concat_tables(parts) if parts else schema.empty_table())

    types = {c.name: c.type for c in t.columns}
    parsed = ",\n".join(f'r."{c}" AS "{c}__raw", {_parsed(c, types[c])} AS "{c}"' for c in cols)
    rules = [f'("{c}__raw" IS NULL OR "{c}" IS NOT NULL)' for c in cols]  # non-empty parses
    rules += [f'"{c}" IS NOT NULL' for c in t.required]
    rules += [f'("{c}" IS NULL OR "{c}" >= 0)' for c in t.non_negative]
    rules += [f'("{c}" IS NULL OR "{c}" IN (0, 1))' for c in t.flag_01]
    rules += [f'"{t.business_date_column}" = _day::DATE']
    key = ", ".join(f'"{c}"' for c in t.unique_key)
    # Names: the uuid prefix p and the contract's tables and columns; the data is registered, not inlined.
    con.execute(f"""
        CREATE TEMP TABLE {p}_acc_{t.name} AS
        WITH typed AS (
            SELECT r._file, r._day, r._ord, {parsed}
            FROM {raw} r
        ),
        valid AS (  -- passes every rule but the duplicate one
            SELECT * FROM typed WHERE coalesce({" AND ".join(rules)}, false)
        ),
        ranked AS (  -- first in file order per key is kept, later repeats rejected
            SELECT *, row_number() OVER (PARTITION BY _file, {key} ORDER BY _ord) AS _nth FROM valid
        )
        SELECT _file, _ord, {", ".join(f'"{c}"' for c in cols)} FROM ranked WHERE _nth = 1
    """)  # nosec B608  # see above
    con.unregister(raw)
    return n_read


# ---------------------------------------------------------------- the fact (§3)

FACT_SQL = """
WITH day_sales AS (
    SELECT trans_dt AS day, store_key, prod_key,
           sum(sales_qty) AS day_qty, sum(sales_amt) AS day_amt, sum(sales_cost) AS day_cost
    FROM {p}_acc_sales
    GROUP BY ALL
),
days AS (  -- one row per day and pair with a sale or an inventory row (at most one per day)
    SELECT coalesce(s.day, i.cal_dt)             AS day,
           coalesce(s.store_key, i.store_key)    AS store_key,
           coalesce(s.prod_key, i.prod_key)      AS prod_key,
           coalesce(s.day_qty, 0)                AS day_qty,
           coalesce(s.day_amt, 0)                AS day_amt,
           coalesce(s.day_cost, 0)               AS day_cost,
           i.cal_dt IS NOT NULL                  AS has_inv,
           i.inventory_on_hand_qty               AS on_hand,
           i.inventory_on_order_qty              AS on_order,
           i.out_of_stock_flg                    AS oos
    FROM day_sales s
    FULL OUTER JOIN {p}_acc_inventory i
      ON s.day = i.cal_dt AND s.store_key = i.store_key AND s.prod_key = i.prod_key
),
flagged AS (
    SELECT *,
           day - dayofweek(day)::INTEGER AS week_start,  -- dayofweek: Sunday = 0
           CASE WHEN has_inv AND on_hand < day_qty THEN 1 ELSE 0 END AS low_stock_flg
    FROM days
),
weekly AS (
    SELECT week_start, store_key, prod_key,
           sum(day_qty)  AS total_sales_qty,
           sum(day_amt)  AS total_sales_amt,
           sum(day_cost) AS total_sales_cost,
           arg_max(on_hand, day)  FILTER (WHERE has_inv) AS eow_stock_on_hand_qty,
           arg_max(on_order, day) FILTER (WHERE has_inv) AS eow_stock_on_order_qty,
           count(*) FILTER (WHERE has_inv) AS inventory_days,
           coalesce(sum(oos) FILTER (WHERE has_inv), 0) AS no_stock_instances,
           sum(low_stock_flg) AS low_stock_instances,
           coalesce(sum(day_amt::DOUBLE * (1 - on_hand::DOUBLE / day_qty::DOUBLE))
                    FILTER (WHERE low_stock_flg = 1), 0) AS potential_low_stock_impact,
           coalesce(sum(day_amt) FILTER (WHERE has_inv AND oos = 1), 0) AS no_stock_impact
    FROM flagged
    GROUP BY ALL
)
SELECT week_start,
       week_start + 6                                 AS week_end,
       store_key::INTEGER                             AS store_key,
       prod_key::INTEGER                              AS prod_key,
       total_sales_qty::DECIMAL(38, 2)                AS total_sales_qty,
       total_sales_amt::DECIMAL(38, 2)                AS total_sales_amt,
       total_sales_cost::DECIMAL(38, 2)               AS total_sales_cost,
       CASE WHEN total_sales_qty <> 0
            THEN total_sales_amt::DOUBLE / total_sales_qty::DOUBLE END AS avg_sales_price,
       eow_stock_on_hand_qty::DECIMAL(38, 2)          AS eow_stock_on_hand_qty,
       eow_stock_on_order_qty::DECIMAL(38, 2)         AS eow_stock_on_order_qty,
       no_stock_instances::INTEGER                    AS no_stock_instances,
       low_stock_instances::INTEGER                   AS low_stock_instances,
       (low_stock_instances + no_stock_instances)::INTEGER AS total_low_stock_impact,
       CASE WHEN inventory_days > 0
            THEN (7 - no_stock_instances)::DOUBLE / 7 END AS in_stock_pct,
       potential_low_stock_impact::DOUBLE             AS potential_low_stock_impact,
       no_stock_impact::DECIMAL(38, 2)                AS no_stock_impact,
       CASE WHEN eow_stock_on_hand_qty IS NOT NULL AND total_sales_qty <> 0
            THEN eow_stock_on_hand_qty::DOUBLE / total_sales_qty::DOUBLE END AS weeks_of_supply
FROM weekly
ORDER BY week_start, store_key, prod_key
"""


# ---------------------------------------------------------------- API

def _run(raw_dir: str | Path, con: duckdb.DuckDBPyConnection | None, want_fact: bool):
    own = con is None
    if own:
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
    p = "_ref_" + uuid.uuid4().hex[:10]
    try:
        good, errors = _landing_files(Path(raw_dir))
        n_read = {}
        for t in DAILY:
            n_read |= _load(con, CONTRACT[t], good[t], p, errors)
        if want_fact:
            return con.sql(FACT_SQL.format(p=p)).to_arrow_table()
        n_acc = dict(con.execute(f"""
            SELECT _file, count(*) FROM {p}_acc_sales GROUP BY ALL
            UNION ALL
            SELECT _file, count(*) FROM {p}_acc_inventory GROUP BY ALL
        """).fetchall())  # nosec B608  # p is our uuid prefix
        counts = {name: {"read": 0, "accepted": 0, "rejected": 0, "error": reason}
                  for name, reason in errors.items()}
        for name, n in n_read.items():
            acc = n_acc.get(name, 0)
            counts[name] = {"read": n, "accepted": acc, "rejected": n - acc}
        return dict(sorted(counts.items()))
    finally:
        if own:
            con.close()
        else:
            for t in DAILY:
                con.execute(f"DROP TABLE IF EXISTS {p}_acc_{t}")
                try:
                    con.unregister(f"{p}_raw_{t}")  # only left over after an error
                except duckdb.Error:
                    pass


def reference_fact(raw_dir: str | Path, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """SPEC §3 weekly sales-inventory fact from the sales/inventory files in raw_dir."""
    return _run(raw_dir, con, want_fact=True)


def reference_counts(
    raw_dir: str | Path, con: duckdb.DuckDBPyConnection | None = None
) -> dict[str, dict]:
    """{file name: {"read", "accepted", "rejected"}} for every sales/inventory file in
    raw_dir; files refused at file level have zero counts and an "error" reason."""
    return _run(raw_dir, con, want_fact=False)
