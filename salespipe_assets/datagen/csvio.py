"""CSV rendering and deterministic, atomic gzip writes (SPEC §1 format)."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

COMPRESSLEVEL = 6
_NEEDS_QUOTE = r'[",\r\n]'


def _string_table_body(table: pa.Table) -> bytes:
    """CSV rows of a table with string columns, quoting a string only when it needs it.

    (pyarrow's quoting_style="needed" quotes every string value.)
    """
    cols = []
    for col in table.columns:
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        if pa.types.is_string(col.type):
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(col, '"', '""'), '"', "")
            col = pc.if_else(pc.match_substring_regex(col, _NEEDS_QUOTE), quoted, col)
        else:
            col = col.cast(pa.string())
        cols.append(pc.fill_null(col, ""))
    lines = pc.binary_join_element_wise(*cols, ",")
    lines = pc.binary_join_element_wise(lines, "", "\n")  # line + "\n"
    if isinstance(lines, pa.ChunkedArray):
        lines = lines.combine_chunks()
    if len(lines) == 0:
        return b""
    offsets = np.frombuffer(lines.buffers()[1], dtype=np.int32)[lines.offset: lines.offset + len(lines) + 1]
    return lines.buffers()[2].to_pybytes()[offsets[0]: offsets[-1]]


def csv_body(table: pa.Table) -> bytes:
    """The data rows (no header) as UTF-8 CSV bytes."""
    if any(pa.types.is_string(f.type) for f in table.schema):
        return _string_table_body(table)
    sink = pa.BufferOutputStream()
    pacsv.write_csv(table, sink, pacsv.WriteOptions(include_header=False, quoting_style="needed"))
    return sink.getvalue().to_pybytes()


def write_csv_gz(path: Path, header: str, body: bytes) -> int:
    """Write header + body gzip-compressed, byte-reproducibly and atomically. Returns bytes written."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as raw:
            with gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="", compresslevel=COMPRESSLEVEL) as gz:
                gz.write(header.encode("utf-8") + b"\n")
                gz.write(body)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path.stat().st_size
