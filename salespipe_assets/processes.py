"""Child processes salespipe starts itself (the Spark Connect server, its supervisor, Superset).

Background processes on a shared machine may start with SIGINT/SIGTERM ignored, and a
child inherits that: every child gets the default handlers back, so it can be stopped.
"""

from __future__ import annotations

import os
import signal
import socket

_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def default_signals() -> None:
    """A ``preexec_fn``: the default handlers; the child stays in our process group (a
    Ctrl-C or a group kill reaches it)."""
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def restore_signals() -> None:
    """A ``preexec_fn``: the default handlers and a process group of its own (stopping it by
    its PID's group reaches its children; a Ctrl-C meant for us is handled by us, in order)."""
    default_signals()
    os.setsid()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
