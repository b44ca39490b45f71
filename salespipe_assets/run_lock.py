"""One ``salespipe run`` (or ``backfill``) at a time per lake, and one process at a time
creating a new DAGSTER_HOME's SQLite schemas.

Both are OS advisory locks (``flock`` through the ``filelock`` package): the kernel drops
them when their process ends, however it ends, so a killed run never leaves the lake
locked. A local lake's lock is ``LAKE/.salespipe-run.lock``, next to its catalog and
warehouse; it holds the holder's pid and start time, for the message the next run gives.
An S3 lake has no file to lock: its lock is local, ``DAGSTER_HOME/locks/<sha256 of the
lake URI>.lock``, so it serialises the runs of this machine and instance only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock, Timeout

LAKE_LOCK = ".salespipe-run.lock"
INSTANCE_LOCK = ".salespipe-instance.lock"


class LakeBusy(Exception):
    """Another process holds the lake."""


def lake_lock_path(lake: str, dagster_home: str | Path) -> Path:
    if lake.startswith("s3://"):
        digest = hashlib.sha256(lake.rstrip("/").encode()).hexdigest()[:32]
        locks = Path(dagster_home) / "locks"
        locks.mkdir(parents=True, exist_ok=True)
        return locks / f"{digest}.lock"
    return Path(lake) / LAKE_LOCK


def lock_holder(path: Path) -> str:
    """``pid N, started T`` as the holder wrote it ("pid unknown" in the instant before it does)."""
    try:
        holder = json.loads(path.read_text())
        return f"pid {int(holder['pid'])}, started {holder['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "pid unknown"


@contextmanager
def holding_lake(lake: str, dagster_home: str | Path, command: str, wait: bool = False,
                 echo: Callable[[str], None] = print) -> Iterator[None]:
    """Hold the lake for this process; another holder makes it raise ``LakeBusy`` at once,
    or, with ``wait``, say so once and wait for it."""
    path = lake_lock_path(lake, dagster_home)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        busy = f"another salespipe run ({lock_holder(path)}) holds the lake {lake}"
        if not wait:
            raise LakeBusy(f"{busy}: wait for it to end, or pass --wait") from None
        echo(f"waiting: {busy} ...")
        lock.acquire()
        echo(f"the lake {lake} is free: {command} starts")
    try:
        started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        path.write_text(json.dumps({"pid": os.getpid(), "command": command, "started": started}) + "\n")
        yield
    finally:
        lock.release()


@contextmanager
def open_instance() -> Iterator:
    """``DagsterInstance.get()`` with its storages created under a lock on DAGSTER_HOME:
    two processes creating a new home's SQLite tables at once fail with
    ``table ... already exists``."""
    import dagster as dg

    home = Path(os.environ["DAGSTER_HOME"])
    with FileLock(str(home / INSTANCE_LOCK)):
        instance = dg.DagsterInstance.get()
        try:
            instance.get_runs_count()  # runs.db (and schedules.db, made with the instance)
            instance.get_asset_records()  # the event log's index shard
        except BaseException:
            instance.dispose()
            raise
    with instance:
        yield instance
