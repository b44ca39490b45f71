"""``salespipe dev --code-server``: the code location in its own ``dagster code-server``,
which the webserver and daemon of ``dagster dev`` load over gRPC (a ``grpc_server``
workspace). Reloading the code (the UI's "Reload", or a new image) restarts only the code
server's inner process; the daemon, its sensors and queued runs go on. Runs are launched
by the code server, so a run worker is its child.
"""

from __future__ import annotations

import signal
import subprocess  # nosec B404  # the venv's dagster commands, argument lists, no shell
import sys
import time
from pathlib import Path

LOCATION = "salespipe"
MODULE = "salespipe_assets.definitions"
HOST = "127.0.0.1"
WORKSPACE = "workspace-code-server.yaml"  # written into DAGSTER_HOME
START_TIMEOUT = 600  # the code server answers before the code is loaded; loading takes a while


def workspace_yaml(host: str, port: int, location: str = LOCATION) -> str:
    return f"load_from:\n  - grpc_server:\n      host: {host}\n      port: {port}\n      location_name: {location}\n"


def code_server_argv(dagster: str, port: int, host: str = HOST) -> list[str]:
    return [dagster, "code-server", "start", "-m", MODULE, "--location-name", LOCATION, "-h", host, "-p", str(port)]


def _wait_serving(dagster: str, port: int, server: subprocess.Popen) -> None:
    deadline = time.time() + START_TIMEOUT
    while time.time() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"dagster code-server exited with {server.returncode} (port {port} in use?)")
        check = subprocess.run([dagster, "api", "grpc-health-check", "-h", HOST, "-p", str(port)],  # nosec B603
                               capture_output=True)
        if check.returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError(f"dagster code-server did not answer on {HOST}:{port} within {START_TIMEOUT} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_with_code_server(dagster: str, ui_port: int, grpc_port: int, home: Path) -> int:
    """Run the code server and ``dagster dev`` over it until dagster dev ends; its exit code."""
    workspace = home / WORKSPACE
    workspace.write_text(workspace_yaml(HOST, grpc_port))
    # SIGTERM ends both children too (the finally below), not only this process
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    server = subprocess.Popen(code_server_argv(dagster, grpc_port))  # nosec B603
    dev = None
    try:
        _wait_serving(dagster, grpc_port, server)
        print(f"code server: {HOST}:{grpc_port} (workspace {workspace})", flush=True)
        dev = subprocess.Popen([dagster, "dev", "-w", str(workspace), "-h", HOST, "-p", str(ui_port)])  # nosec B603
        while True:
            try:
                return dev.wait()
            except KeyboardInterrupt:  # Ctrl-C reached dagster dev too: let it shut down cleanly
                continue
    finally:
        if dev is not None:
            _stop(dev)
        _stop(server)
