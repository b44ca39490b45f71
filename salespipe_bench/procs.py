"""Processes the benchmark and the tests start themselves, and their memory.

``start``/``stop``/``wait_http``/``descendants``/``restore_signals`` are shared with the
tests (``tests/servers.py`` imports them from here; the product never needs them):
children restore the default signal handlers (background processes on a shared machine
may inherit SIGINT/SIGTERM as ignored), get their own process group, and are stopped by
their own PID. ``free_port`` and ``restore_signals`` are the product's own
(``salespipe_assets.processes``: the Connect server and Superset are started the same way).

``MemorySampler`` follows a process tree through ``/proc`` (Linux) and keeps the peak
memory (PSS, so pages shared by forked workers are not counted twice) of two groups: the orchestrator (Python processes outside Spark) and Spark
(every ``java`` process and its descendants - PySpark's Python workers included).
"""

from __future__ import annotations

import os
import signal
import subprocess  # nosec B404  # servers the bench and the tests start themselves, argument lists
import threading
import time
import urllib.request
from pathlib import Path

from salespipe_assets.processes import free_port, restore_signals

__all__ = ["MemorySampler", "descendants", "free_port", "peak_rss_bytes", "restore_signals", "start", "stop",
           "tree_rss", "wait_http"]

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def start(cmd: list[str], *, env: dict | None = None, log: Path | None = None,
          cwd: str | None = None) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT,  # nosec B603  # argument list
                            preexec_fn=restore_signals, cwd=cwd)


def descendants(pid: int) -> list[int]:
    """Child processes, recursively, read from /proc (some, like Dagster's code server,
    start a session of their own and so leave the process group)."""
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out.extend(children)
            todo.extend(children)
    return out


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    stragglers = descendants(proc.pid)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except (subprocess.TimeoutExpired, ProcessLookupError):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)
    for pid in stragglers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def wait_http(url: str, timeout: float = 90, proc: subprocess.Popen | None = None) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # nosec B310  # a http://127.0.0.1 URL we built
                return
        except Exception:
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


# ---------------------------------------------------------------- memory

def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def _rss_bytes(pid: int) -> int:
    """The process's proportional set size (PSS: resident pages, a shared page divided among
    the processes sharing it - PySpark's forked Python workers share most of theirs), or its
    resident set size where smaps_rollup is not available."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def peak_rss_bytes(pid: int) -> int:
    """The kernel's high-water mark of a live process's resident set (VmHWM)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss(root: int) -> dict[str, int]:
    """Resident bytes of the tree under ``root`` (root included), split into
    ``orchestrator`` and ``spark`` (java and everything below it)."""
    totals = {"orchestrator": 0, "spark": 0}
    todo = [(root, False)]
    while todo:
        pid, in_spark = todo.pop()
        in_spark = in_spark or _comm(pid) == "java"
        totals["spark" if in_spark else "orchestrator"] += _rss_bytes(pid)
        todo.extend((c, in_spark) for c in _children(pid))
    return totals


class MemorySampler:
    """Samples ``tree_rss(pid)`` every ``interval`` seconds in a thread; keeps the peak of
    each group (sum over the group's processes at one instant) and the root process's own
    VmHWM (exact, between samples too)."""

    def __init__(self, pid: int, interval: float = 0.2):
        if not Path("/proc/self/statm").exists():
            raise RuntimeError("memory sampling reads /proc: Linux only")
        self.pid, self.interval = pid, interval
        self.peak = {"orchestrator": 0, "spark": 0}
        self.root_hwm = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        now = tree_rss(self.pid)
        self.samples += 1
        for k, v in now.items():
            self.peak[k] = max(self.peak[k], v)
        self.root_hwm = max(self.root_hwm, peak_rss_bytes(self.pid))

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
