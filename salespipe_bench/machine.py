"""The machine a benchmark ran on: hardware, software versions, and how busy it was."""

from __future__ import annotations

import os
import platform
import subprocess  # nosec B404  # java -version and git rev-parse, argument lists
from pathlib import Path

from salespipe_assets.settings import PROJECT_ROOT


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _ram_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def _java() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)  # nosec B603 B607  # fixed argument list
        return (out.stderr or out.stdout).splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "unknown"


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,  # nosec B603 B607  # fixed argument list
                             cwd=PROJECT_ROOT, timeout=10)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def describe() -> dict:
    import dagster
    import duckdb
    import pyarrow
    import pyspark

    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "java": _java(),
        "spark": pyspark.__version__,
        "dagster": dagster.__version__,
        "duckdb": duckdb.__version__,
        "pyarrow": pyarrow.__version__,
        "git_commit": _git_commit(),
        "load_average_at_start": load_average(),  # 1, 5, 15 minutes; > cores means a shared, busy machine
    }
