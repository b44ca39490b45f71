"""Servers the tests start themselves, on 127.0.0.1, each stopped by its own PID.

Background processes on this machine may inherit SIGINT/SIGTERM as ignored, so every
child restores the default handlers before exec; ``stop`` then terminates the process
group it created, escalating to SIGKILL. The helpers are the bench's
(``salespipe_bench.procs``: one copy for both; ``free_port`` is the product's).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

from salespipe_bench.procs import descendants, free_port, restore_signals, start, stop, wait_http

# The names the tests have imported from here since before the helpers moved.
_descendants = descendants
_restore_signals = restore_signals

__all__ = ["_descendants", "_restore_signals", "descendants", "free_port", "moto_server", "restore_signals",
           "start", "stop", "wait_http"]


@contextmanager
def moto_server():
    """A moto server (S3, Glue, Athena, EMR, ...) as a separate process; yields its endpoint URL."""
    import shutil
    import sys

    port = free_port()
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or "moto_server"
    proc = start([exe, "-H", "127.0.0.1", "-p", str(port)])
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/moto-api/", proc=proc)
        yield url
    finally:
        stop(proc)
