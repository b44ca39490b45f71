"""The code a Spark cluster needs to run the steps, as one zip for ``--py-files``.

The zip holds the ``spark_steps`` package and ``dagster_pipes`` (pure Python, so a
cluster needs no pip install for it); the binary dependencies (pyarrow, numpy) come from
the cluster's own Python (the EMR bootstrap script installs them). Entries have a fixed
order and timestamp, so the same sources give the same bytes and the same content hash,
and an unchanged package is uploaded once.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import zipfile
from pathlib import Path

import dagster_pipes

import spark_steps

# The program every EMR step runs (spark-submit's main file); it imports from the zip.
ENTRY_PROGRAM = Path(__file__).with_name("emr_entry.py")
_ZIP_TIME = (2020, 1, 1, 0, 0, 0)


def _sources() -> list[tuple[str, Path]]:
    files = []
    for package in (spark_steps, dagster_pipes):
        root = Path(package.__file__).parent
        for path in sorted(root.rglob("*.py")):
            files.append((f"{package.__name__}/{path.relative_to(root).as_posix()}", path))
    return files


def package_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, path in _sources():
            info = zipfile.ZipInfo(name, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def package_name(data: bytes) -> str:
    return f"salespipe_steps-{content_hash(data)}.zip"


def build_package(directory: str | Path | None = None) -> Path:
    """Write the zip (named by its content hash) into ``directory``; return its path."""
    data = package_bytes()
    folder = Path(directory or Path(tempfile.gettempdir()) / "salespipe-spark-package")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / package_name(data)
    if not path.exists():
        partial = path.with_suffix(f".{os.getpid()}.part")
        partial.write_bytes(data)
        partial.replace(path)  # atomic: concurrent builders never see half a zip
    return path
