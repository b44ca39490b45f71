"""Quoting for SQL text built from input (paths, identifiers, dates)."""

from __future__ import annotations

import datetime as dt
import re

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def literal(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def identifier(name: str) -> str:
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a safe SQL identifier: {name!r}")
    return f'"{name}"'


def date_literal(value: str) -> str:
    return f"DATE {literal(dt.date.fromisoformat(value).isoformat())}"
