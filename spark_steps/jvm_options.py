"""The local Spark driver JVM's options: the JIT compiler's settings and the
class-data-sharing archive to start from.

Imported by ``runtime`` (which starts sessions) and by ``jvm_cds`` (which builds the
archive by starting one): this module imports neither, so they do not import each other.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CDS_ENV_VAR = "SALESPIPE_SPARK_CDS"  # a path to use instead, or "off"
# The JVM says nothing about the archive (a stale one is silently ignored).
_CDS_QUIET = "-Xlog:cds=off -Xlog:cds+dynamic=off -Xshare:auto"

# A local run's driver JVM lives for one run, on few cores. Which JIT pays depends on the
# input, and the run knows its input before its JVM starts (the landed files of its range),
# so the choice is made then. Measured on a quiet 2-core machine (salespipe_bench/jit_ab.py:
# a fresh JVM per sample from the CDS archive, variants interleaved, 3 rounds, 2026-12-03):
# - a demo day (five files, 140 KB gzip) staged + its week: C1 alone 14.5-19.3 s, tiered
#   C1+C2 23.0-25.8 s. C2's optimising compiles cost more CPU than they give back.
# - one scale-1 sales file (13 MB gzip, about 1M rows) staged: C1 alone 40.6-43.4 s,
#   tiered 33.3-37.4 s. The rows run long enough for C2's code to pay off.
# So C1 alone below LARGE_INPUT_BYTES of landed input (or when the input is not known:
# the week's run, a test session), the JDK's tiered default above. A TieredStopAtLevel or
# TieredCompilation in the configured options wins.
LARGE_INPUT_BYTES = 8 << 20  # a month of demo days (about 4 MB) stays below; a scale-1 day is 16 MB
LOCAL_DRIVER_JIT = "-XX:TieredStopAtLevel=1"
# C1 alone puts the JVM in "client emulation": its code cache shrinks from 240 MB to 48 MB.
# A JVM that lives long (`salespipe run` over many days, a test session) fills that, and a
# full code cache disables the compiler and makes Spark's scheduler fail on an
# InternalError, which leaves the job waiting forever. The usual size, unless configured.
LOCAL_DRIVER_CODE_CACHE = "-XX:ReservedCodeCacheSize=240m"


def archive_path() -> Path | None:
    """Where the CDS archive is (or would be built); None when switched off."""
    setting = os.environ.get(CDS_ENV_VAR, "")
    if setting.lower() == "off":
        return None
    return Path(setting) if setting else Path(sys.prefix) / "share" / "salespipe" / "spark-driver.jsa"


def cds_java_options(existing: str = "") -> str:
    """``existing`` plus the options that map the archive, when there is one."""
    path = archive_path()
    if path is None or not path.is_file():
        return existing
    return f"{existing} -XX:SharedArchiveFile={path} {_CDS_QUIET}".strip()


def local_driver_java_options(existing: str = "", input_bytes: int | None = None) -> str:
    """``spark.driver.extraJavaOptions`` for a local driver: the JIT settings (unless
    configured; C1 alone unless ``input_bytes``, the landed bytes the JVM is started for,
    is at least ``LARGE_INPUT_BYTES``) with a full-size code cache, from the CDS archive."""
    large = input_bytes is not None and input_bytes >= LARGE_INPUT_BYTES
    if "Tiered" not in existing and LOCAL_DRIVER_JIT and not large:
        existing = f"{existing} {LOCAL_DRIVER_JIT}".strip()
    if "ReservedCodeCacheSize" not in existing:
        existing = f"{existing} {LOCAL_DRIVER_CODE_CACHE}".strip()
    return cds_java_options(existing)
