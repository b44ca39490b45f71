"""A plain DuckDB reference for SPEC §2 (row rules of sales/inventory) and §3 (the fact).

Written from SPEC.md alone, independently of the Spark steps, so it can serve as the
oracle in tests and as the baseline of the benchmark. Column lists and row rules come
from ``spark_steps.contract`` (the contract as data); the logic is this file's own.

Decisions where SPEC is silent (keep in step with the project docs):

* Fields are read as VARCHAR. Empty fields, quoted or not, are null. A value parses only
  if it matches its type strictly (no surrounding spaces, no exponent, integers in
  range); decimals are rounded half away from zero to the column's scale, and the
  non-negative rule is judged on that rounded value (``-0.001`` reads as 0.00: accepted).
* A line with the wrong number of fields, an unterminated quote (which swallows the rest
  of the file, as in any CSV reader) or invalid UTF-8 is one rejected row. Blank lines
  are not rows.
* The header must equal the contract's header byte for byte (after the line ending); a
  UTF-8 BOM or quoted column names make it a wrong header.
* A name like ``sales_*.csv`` whose date part is not ``YYYY-MM-DD`` or not a calendar
  date is a file error; so is a second file for the same table and day
  (``x.csv`` next to ``x.csv.gz``): both are refused rather than counting the day twice.
* A header-only file is valid and has 0 rows.
"""

from __future__ import annotations

import datetime as dt
import gzip
import uuid
import zlib
from pathlib import Path

import duckdb
import pyarrow as pa

from spark_steps.contract import CONTRACT, LANDING_NAME, Table

DAILY = ("sales", "inventory")

INT_RE = r"^[+-]?[0-9]+$"
DEC_RE = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$"
DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
NAME_DATE_RE = r"_([0-9]{4}-[0-9]{2}-[0-9]{2})\.csv(\.gz)?$"


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
    try:
        with opener(path, "rb") as f:
            first = f.readline()
            while f.read(1 << 20):  # decompress everything: catches truncated gzip
                pass
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
        return f"CASE WHEN regexp_full_match({v}, '{DEC_RE}') THEN TRY_CAST({v} AS {typ.upper()}) END"
    if typ == "date":
        return f"CASE WHEN regexp_full_match({v}, '{DATE_RE}') THEN TRY_CAST({v} AS DATE) END"
    if typ == "boolean":
        return f"CASE lower({v}) WHEN 'true' THEN true WHEN 'false' THEN false END"
    return v  # string


def _load(con: duckdb.DuckDBPyConnection, t: Table, paths: list[Path], p: str) -> None:
    """Create {p}_raw_<t> (every parsed line, VARCHAR), {p}_bad_<t> (lines the CSV reader
    rejected: wrong field count, bad quoting/encoding) and {p}_acc_<t> (accepted rows)."""
    raw, bad, acc = f"{p}_raw_{t.name}", f"{p}_bad_{t.name}", f"{p}_acc_{t.name}"
    cols = t.column_names
    if paths:
        files = ", ".join("'" + str(x).replace("'", "''") + "'" for x in paths)
        columns = "{" + ", ".join(f"'{c}': 'VARCHAR'" for c in cols) + "}"
        # CTAS keeps file order (preserve_insertion_order), so rowid is the file order.
        con.execute(f"""
            CREATE TEMP TABLE {raw} AS
            SELECT * EXCLUDE (filename), filename AS _path
            FROM read_csv([{files}], columns = {columns}, header = true, auto_detect = false,
                          delim = ',', quote = '"', escape = '"', filename = true,
                          store_rejects = true, rejects_scan = '{p}_rs', rejects_table = '{p}_rt')
        """)
        con.execute(f"""
            CREATE TEMP TABLE {bad} AS
            SELECT s.file_path AS _path, count(DISTINCT e.line) AS n
            FROM {p}_rt e JOIN {p}_rs s USING (scan_id, file_id) GROUP BY ALL
        """)
        con.execute(f"DROP TABLE {p}_rt; DROP TABLE {p}_rs")
    else:
        con.execute(f"CREATE TEMP TABLE {raw} AS SELECT "
                    + ", ".join(f'NULL::VARCHAR AS "{c}"' for c in cols)
                    + ", NULL::VARCHAR AS _path WHERE false")
        con.execute(f"CREATE TEMP TABLE {bad} (_path VARCHAR, n BIGINT)")

    types = {c.name: c.type for c in t.columns}
    parsed = ",\n".join(f'{_parsed(c, types[c])} AS "{c}"' for c in cols)
    parses = " AND ".join(f'(r."{c}" IS NULL OR {_parsed(c, types[c])} IS NOT NULL)' for c in cols)
    rules = [f'"{c}" IS NOT NULL' for c in t.required]
    rules += [f'("{c}" IS NULL OR "{c}" >= 0)' for c in t.non_negative]
    rules += [f'("{c}" IS NULL OR "{c}" IN (0, 1))' for c in t.flag_01]
    rules += [f"\"{t.business_date_column}\" = regexp_extract(_path, '{NAME_DATE_RE}', 1)::DATE"]
    key = ", ".join(f'"{c}"' for c in t.unique_key)
    con.execute(f"""
        CREATE TEMP TABLE {acc} AS
        WITH typed AS (
            SELECT r.rowid AS _ord, r._path, {parses} AS _parses,
                   {parsed}
            FROM {raw} r
        ),
        valid AS (  -- passes every rule but the duplicate one
            SELECT * FROM typed WHERE _parses AND coalesce({" AND ".join(rules)}, false)
        ),
        ranked AS (  -- first in file order per key is kept
            SELECT *, row_number() OVER (PARTITION BY _path, {key} ORDER BY _ord) AS _nth FROM valid
        )
        SELECT * EXCLUDE (_parses, _nth) FROM ranked WHERE _nth = 1
    """)


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
    raw_dir = Path(raw_dir)
    own = con is None
    if own:
        con = duckdb.connect()
        con.execute("SET enable_progress_bar = false")
    p = "_ref_" + uuid.uuid4().hex[:10]
    order_setting = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = true")
    try:
        good, errors = _landing_files(raw_dir)
        for t in DAILY:
            _load(con, CONTRACT[t], good[t], p)
        if want_fact:
            return con.sql(FACT_SQL.format(p=p)).to_arrow_table()
        counts: dict[str, dict] = {
            name: {"read": 0, "accepted": 0, "rejected": 0, "error": reason}
            for name, reason in errors.items()
        }
        for t in DAILY:
            rows = con.execute(f"""
                WITH paths AS (SELECT unnest($paths) AS _path),
                     parsed AS (SELECT _path, count(*) AS n FROM {p}_raw_{t} GROUP BY ALL),
                     accepted AS (SELECT _path, count(*) AS n FROM {p}_acc_{t} GROUP BY ALL)
                SELECT _path, coalesce(parsed.n, 0) + coalesce(bad.n, 0), coalesce(accepted.n, 0)
                FROM paths LEFT JOIN parsed USING (_path) LEFT JOIN {p}_bad_{t} bad USING (_path)
                LEFT JOIN accepted USING (_path)
            """, {"paths": [str(x) for x in good[t]]}).fetchall()
            for path, n_read, n_acc in rows:
                counts[Path(path).name] = {"read": n_read, "accepted": n_acc, "rejected": n_read - n_acc}
        return dict(sorted(counts.items()))
    finally:
        if own:
            con.close()
        else:
            for t in DAILY:
                for kind in ("raw", "bad", "acc"):
                    con.execute(f"DROP TABLE IF EXISTS {p}_{kind}_{t}")
            con.execute(f"SET preserve_insertion_order = {order_setting}")


def reference_fact(raw_dir: str | Path, con: duckdb.DuckDBPyConnection | None = None) -> pa.Table:
    """SPEC §3 weekly sales-inventory fact from the sales/inventory files in raw_dir."""
    return _run(raw_dir, con, want_fact=True)


def reference_counts(raw_dir: str | Path, con: duckdb.DuckDBPyConnection | None = None) -> dict[str, dict]:
    """{file name: {"read", "accepted", "rejected"}} for every sales/inventory file in
    raw_dir; files refused at file level have zero counts and an "error" reason."""
    return _run(raw_dir, con, want_fact=False)
