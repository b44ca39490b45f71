"""Small pyarrow helpers: exact decimals from integers, dates from ordinals, string ops."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_UNIX_EPOCH_ORDINAL = 719163  # datetime.date(1970, 1, 1).toordinal()


def _validity(null) -> pa.Buffer | None:
    if null is None:
        return None
    null = np.asarray(null, dtype=bool)
    if not null.any():
        return None
    return pa.py_buffer(np.packbits(~null, bitorder="little"))


def decimal_array(unscaled, precision: int, scale: int, null=None) -> pa.Array:
    """decimal128(precision, scale) whose values are `unscaled` / 10**scale, exactly.

    `unscaled` holds integers (e.g. cents for scale 2); `null` is an optional bool mask.
    """
    v = np.asarray(unscaled).astype(np.int64)
    words = np.empty((len(v), 2), dtype=np.int64)  # 128-bit little-endian two's complement
    words[:, 0] = v
    words[:, 1] = v >> 63
    return pa.Array.from_buffers(
        pa.decimal128(precision, scale), len(v), [_validity(null), pa.py_buffer(words)]
    )


def date_array(ordinals, null=None) -> pa.Array:
    """date32 from proleptic Gregorian ordinals (datetime.date.toordinal())."""
    days = (np.asarray(ordinals, dtype=np.int64) - _UNIX_EPOCH_ORDINAL).astype(np.int32)
    return pa.Array.from_buffers(pa.date32(), len(days), [_validity(null), pa.py_buffer(days)])


def str_of(values) -> pa.Array:
    """Integers (or anything arrow can cast) rendered as strings."""
    return pa.array(np.asarray(values)).cast(pa.string())


def join_str(*parts) -> pa.Array:
    """Element-wise concatenation of string arrays, numpy object arrays and str scalars."""
    conv = [p if isinstance(p, (pa.Array, pa.ChunkedArray, str)) else pa.array(p, pa.string()) for p in parts]
    return pc.binary_join_element_wise(*conv, "")
