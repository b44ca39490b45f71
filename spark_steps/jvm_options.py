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

# A local run's driver JVM lives for one run, a few minutes at most, on few cores: C2's
# optimising compiles cost more CPU than they give back before the JVM exits. With C1
# alone a demo day's staging took 18 s instead of 28 s in a fresh JVM and its week 7-9 s
# instead of 11 s, while one day at scale 1 took the same time (58.8 s against 58.5 s).
# A TieredStopAtLevel or TieredCompilation in the configured options wins.
# Re-measured for issue 13 (salespipe_bench/jit_ab.py: fresh JVMs, CDS archive on,
# variants interleaved): C1 alone was not slower at either scale - a demo day's five files
# staged + its week 19.4 s against 22.3 s with tiered C1+C2, one scale-1 sales file staged
# 31.1 s against 34.1 s (the quietest round; every round ranked them alike), and delaying
# C2 (Tier4 thresholds x3) was worse at both. So C1 alone stays; a setting per input size
# is not possible in one JVM that stages small and large files alike.
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


def local_driver_java_options(existing: str = "") -> str:
    """``spark.driver.extraJavaOptions`` for a local driver: the JIT settings (unless
    configured) with a full-size code cache, from the CDS archive."""
    if "Tiered" not in existing and LOCAL_DRIVER_JIT:
        existing = f"{existing} {LOCAL_DRIVER_JIT}".strip()
    if "ReservedCodeCacheSize" not in existing:
        existing = f"{existing} {LOCAL_DRIVER_CODE_CACHE}".strip()
    return cds_java_options(existing)
