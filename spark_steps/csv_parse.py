"""Parse landed CSV files into all-string rows that keep their physical line numbers.

Spark's own CSV reader loses line numbers and silently replaces undecodable bytes, so
each file is read whole (Spark's ``binaryFile`` source) and parsed on an executor with
pyarrow's vectorised CSV reader inside ``mapInArrow``. One Python call per file, no
per-row Python. Each file first yields a status row (``_line`` 0) with its size, checksum and
rows read, or with ``_file_error`` when the file is unusable (SPEC §2 file level); the
driver quarantines such a file and stages nothing from it.

Each physical line is one record: quoted values spanning lines are not supported (a
Snowflake unload with the project's file format never writes them); such a line is
rejected as a row with the wrong number of fields. Blank lines are not rows.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import zlib
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from spark_steps.contract import REASON_FIELD_COUNT, Table

META_COLUMNS = ("_file", "_line", "_row_error", "_raw", "_file_error")
BATCH_ROWS = 200_000


def output_schema(table: Table) -> str:
    cols = ", ".join(f"`{c}` string" for c in table.column_names)
    return (
        "_file string, _line long, _row_error string, _raw string, _file_error string, "
        + cols
    )


class FileError(Exception):
    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


def _decode(name: str, content: bytes) -> bytes:
    if name.endswith(".gz"):
        try:
            data = gzip.decompress(content)
        except EOFError:
            raise FileError("truncated gzip: the compressed stream ends before its end marker")
        except (gzip.BadGzipFile, zlib.error, OSError) as exc:
            raise FileError(f"undecodable gzip: {exc}")
    else:
        data = content
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise FileError(f"not valid UTF-8 at byte {exc.start} ({exc.reason})", line)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]  # a UTF-8 byte-order mark is not part of the header
    return data


def _line_index(data: bytes) -> np.ndarray:
    """1-based numbers of the non-blank physical lines."""
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    starts = np.concatenate(([0], newlines + 1))
    ends = np.concatenate((newlines, [len(buf)]))
    lengths = ends - starts
    first_byte = np.zeros(len(starts), dtype=np.uint8)
    has_bytes = lengths > 0
    first_byte[has_bytes] = buf[starts[has_bytes]]
    non_blank = has_bytes & ~((lengths == 1) & (first_byte == 13))  # "\r" alone is blank too
    numbers = np.flatnonzero(non_blank) + 1
    return numbers


def _check_header(table: Table, data: bytes, line_numbers: np.ndarray) -> None:
    if len(line_numbers) == 0:
        raise FileError("empty file: no header row")
    first = line_numbers[0]
    if first != 1:
        raise FileError("missing header: the file starts with a blank line", 1)
    end = data.find(b"\n")
    header_text = (data if end < 0 else data[:end]).decode("utf-8").rstrip("\r")
    got = next(csv.reader([header_text]), [])
    if got != table.column_names:
        raise FileError(
            f"wrong header: expected {','.join(table.column_names)!r}, got {header_text[:300]!r}", 1
        )


def _read_strings(cols: list[str], data: bytes, invalid: list[tuple[int, str]]) -> pa.Table:
    """All-string parse; rows with the wrong field count go to ``invalid`` as (number, text)."""

    def on_invalid(row) -> str:
        invalid.append((row.number, row.text))
        return "skip"

    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=pacsv.ReadOptions(
            use_threads=False, block_size=max(len(data) + 1, 1 << 20), column_names=cols, skip_rows=1
        ),
        parse_options=pacsv.ParseOptions(
            newlines_in_values=False, ignore_empty_lines=True, invalid_row_handler=on_invalid
        ),
        convert_options=pacsv.ConvertOptions(
            column_types={c: pa.string() for c in cols},
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
            null_values=[""],
        ),
    )


def parse_file(table: Table, name: str, content: bytes) -> Iterator[pa.RecordBatch]:
    """Rows of one file as record batches of the ``output_schema``.

    The first row is the file's status row (``_line`` 0): ``_file_error`` says why the
    file is unusable, or is null; ``_raw`` holds {"size", "sha256", "rows_read"} as JSON.
    """
    cols = table.column_names
    facts = {"size": len(content), "sha256": hashlib.sha256(content).hexdigest()}
    invalid: list[tuple[int, str]] = []
    try:
        data = _decode(name, content)
        numbers = _line_index(data)
        _check_header(table, data, numbers)
        try:
            parsed = _read_strings(cols, data, invalid)
        except pa.ArrowInvalid as exc:
            raise FileError(f"unparseable CSV: {exc}")
    except FileError as err:
        yield _status_batch(table, name, facts, err)
        return
    data_lines = numbers[1:]
    yield _status_batch(table, name, {**facts, "rows_read": int(len(data_lines))}, None)
    # pyarrow numbers the non-blank lines from 1 at the header (skipped rows count too);
    # map its numbers and the accepted rows' positions to physical line numbers.
    bad_idx = np.array([n - 2 for n, _ in invalid], dtype=np.int64)  # header is row 1
    if len(bad_idx) + parsed.num_rows != len(data_lines):
        raise RuntimeError(f"{name}: line accounting failed ({parsed.num_rows} rows, {len(invalid)} invalid, "
                           f"{len(data_lines)} lines)")
    good_mask = np.ones(len(data_lines), dtype=bool)
    good_mask[bad_idx] = False
    good_lines = data_lines[good_mask]

    n = parsed.num_rows
    for lo in range(0, n, BATCH_ROWS):
        hi = min(lo + BATCH_ROWS, n)
        chunk = parsed.slice(lo, hi - lo)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([name] * (hi - lo), pa.string()),
                pa.array(good_lines[lo:hi], pa.int64()),
                pa.nulls(hi - lo, pa.string()),
                pa.nulls(hi - lo, pa.string()),
                pa.nulls(hi - lo, pa.string()),
                *[chunk.column(c).combine_chunks() for c in cols],
            ],
            names=list(META_COLUMNS) + cols,
        )
    if invalid:
        k = len(invalid)
        yield pa.RecordBatch.from_arrays(
            [
                pa.array([name] * k, pa.string()),
                pa.array(data_lines[bad_idx], pa.int64()),
                pa.array([REASON_FIELD_COUNT] * k, pa.string()),
                pa.array([t for _, t in invalid], pa.string()),
                pa.nulls(k, pa.string()),
                *[pa.nulls(k, pa.string()) for _ in cols],
            ],
            names=list(META_COLUMNS) + cols,
        )


def _status_batch(table: Table, name: str, facts: dict, err: FileError | None) -> pa.RecordBatch:
    cols = table.column_names
    if err is not None:
        facts = {**facts, "error_line": err.line}
    return pa.RecordBatch.from_arrays(
        [
            pa.array([name], pa.string()),
            pa.array([0], pa.int64()),
            pa.nulls(1, pa.string()),
            pa.array([json.dumps(facts)], pa.string()),
            pa.array([err.reason if err else None], pa.string()),
            *[pa.nulls(1, pa.string()) for _ in cols],
        ],
        names=list(META_COLUMNS) + cols,
    )


def arrow_parser(table: Table):
    """The function handed to ``mapInArrow`` over a ``binaryFile`` DataFrame."""

    def parse_batches(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            paths = batch.column("path").to_pylist()
            contents = batch.column("content")
            for i, path in enumerate(paths):
                name = path.rsplit("/", 1)[-1]
                yield from parse_file(table, name, contents[i].as_py())

    return parse_batches
