"""The local Spark Connect server: one warm Spark that every run of this machine shares.

Each run opens its own Connect session on it (its temporary views, cache and SQL
configuration are its own) instead of starting a JVM of its own. The server is the JVM
that ``spark-submit --class SparkConnectServer`` execs, from the pyspark wheel (nothing is
downloaded), so the PID we start is the server's: it is stopped by that PID. It binds to
127.0.0.1 only, with the project's local driver settings (driver memory, the C1 + code
cache JVM options and the class-data-sharing archive of ``spark_steps.runtime``).

Its state lives under ``$DAGSTER_HOME/spark-connect/``: ``server.json`` (url, pid, port,
master, log) and ``server.log``. ``salespipe spark up|down|status`` and ``salespipe dev``
use it; ``salespipe run`` reads it to find a server that is already up.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess  # nosec B404  # the wheel's spark-submit with an argument list, no shell
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from salespipe_assets.processes import default_signals, free_port, restore_signals
from spark_steps.java_home import ensure_java_home

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
REMOTE_ENV = "SALESPIPE_SPARK_REMOTE"  # sc://127.0.0.1:PORT: the runs use this server
DEFAULT_DRIVER_MEMORY = "4g"
START_TIMEOUT = 180  # a cold JVM on a busy 2-core machine
# A run killed without closing its session leaves its state (cache, views) on the server
# until the session idles out; the default is an hour.
SESSION_TIMEOUT = "15m"
# An operation whose client went away (a run killed mid-step) keeps the server's cores until
# it has been detached this long (default 5 minutes); a live client reattaches at once.
DETACHED_TIMEOUT = "20s"
# The server notices that a client is gone only when it ends the client's execute stream,
# which it does after this long (default 2 minutes; a live client reattaches at once, so a
# long query pays one cheap reattach per period). Together: a killed run's query gives the
# cores back within about 30 s instead of 2.5 minutes.
STREAM_PERIOD = "10s"


@dataclass
class ServerState:
    url: str
    pid: int
    port: int
    master: str
    log: str

    def alive(self) -> bool:
        return pid_alive(self.pid) and port_open(self.port)


def given_remote() -> str | None:
    """The Connect server the environment names: SALESPIPE_SPARK_REMOTE, else pyspark's own
    SPARK_REMOTE."""
    return (os.environ.get(REMOTE_ENV) or os.environ.get("SPARK_REMOTE") or "").strip() or None


def state_dir(home: str | Path) -> Path:
    return Path(home) / "spark-connect"


def state_file(home: str | Path) -> Path:
    return state_dir(home) / "server.json"


def read_state(home: str | Path) -> ServerState | None:
    try:
        return ServerState(**json.loads(state_file(home).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def running_server(home: str | Path) -> ServerState | None:
    """The server recorded under ``home`` if it is up (its PID lives, its port answers)."""
    state = read_state(home)
    return state if state is not None and state.alive() else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"
    except OSError:
        return True


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def server_conf(master: str, port: int) -> dict[str, str]:
    from spark_steps.runtime import SESSION_DEFAULTS, local_driver_java_options

    return {
        **SESSION_DEFAULTS,
        "spark.master": master,
        "spark.app.name": "salespipe-connect",
        "spark.connect.grpc.binding.address": "127.0.0.1",
        "spark.connect.grpc.binding.port": str(port),
        "spark.connect.session.manager.defaultSessionTimeout": SESSION_TIMEOUT,
        "spark.connect.execute.manager.detachedTimeout": DETACHED_TIMEOUT,
        "spark.connect.execute.manager.maintenanceInterval": "5s",
        "spark.connect.execute.reattachable.senderMaxStreamDuration": STREAM_PERIOD,
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.host": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.driver.extraJavaOptions": local_driver_java_options(),
    }


def command(master: str, port: int, driver_memory: str = DEFAULT_DRIVER_MEMORY) -> list[str]:
    import pyspark

    submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    argv = [str(submit), "--class", SERVER_CLASS, "--name", "Spark Connect server", "--driver-memory", driver_memory]
    for key, value in server_conf(master, port).items():
        argv += ["--conf", f"{key}={value}"]
    return argv


def launch(home: str | Path, master: str = "local[2]", port: int | None = None,
           driver_memory: str = DEFAULT_DRIVER_MEMORY) -> tuple[subprocess.Popen, ServerState]:
    """Start the server (not waiting for it) and record it under ``home``."""
    port = port or free_port()
    folder = state_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "server.log"
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
    for var in ("SPARK_REMOTE", "SPARK_CONNECT_MODE_ENABLED", "SPARK_LOCAL_REMOTE"):
        env.pop(var, None)
    ensure_java_home(env)  # the pip JDK when the machine has no Java 17/21
    with open(log, "ab") as out:
        proc = subprocess.Popen(command(master, port, driver_memory), env=env, stdin=subprocess.DEVNULL,  # nosec B603
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=restore_signals)
    state = ServerState(url=f"sc://127.0.0.1:{port}", pid=proc.pid, port=port, master=master, log=str(log))
    tmp = state_file(home).with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(state)))
    tmp.replace(state_file(home))
    return proc, state


def wait_ready(state: ServerState, proc: subprocess.Popen | None = None, timeout: float = START_TIMEOUT) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        exited = proc.poll() is not None if proc is not None else not pid_alive(state.pid)
        if exited:
            raise RuntimeError(f"the Spark Connect server exited while starting; see {state.log}:\n{log_tail(state.log)}")
        if port_open(state.port):
            return
        time.sleep(0.3)
    raise TimeoutError(f"the Spark Connect server did not answer on port {state.port} within {timeout:.0f} s; see {state.log}")


def log_tail(log: str | Path, lines: int = 5) -> str:
    try:
        return "\n".join(Path(log).read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""


def start(home: str | Path, master: str = "local[2]", port: int | None = None,
          driver_memory: str = DEFAULT_DRIVER_MEMORY) -> tuple[subprocess.Popen, ServerState]:
    """Start the server and wait until it accepts connections."""
    proc, state = launch(home, master, port, driver_memory)
    try:
        wait_ready(state, proc)
    except BaseException:
        terminate(proc.pid)
        raise
    return proc, state


def terminate(pid: int, timeout: float = 20) -> None:
    """SIGTERM the server, SIGKILL it if it has not gone after ``timeout`` seconds."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + wait
        while time.time() < deadline:
            try:
                if os.waitpid(pid, os.WNOHANG)[0] == pid:
                    return
            except ChildProcessError:  # not our child: poll until it is gone
                if not pid_alive(pid):
                    return
            time.sleep(0.2)


def stop(home: str | Path) -> ServerState | None:
    """Stop the server recorded under ``home``; returns what was stopped (None: none was up)."""
    state = read_state(home)
    if state is None:
        return None
    was_up = pid_alive(state.pid) and _is_server(state.pid)
    if was_up:
        terminate(state.pid)
    state_file(home).unlink(missing_ok=True)
    return state if was_up else None


def _is_server(pid: int) -> bool:
    """The PID still belongs to a Connect server (PIDs are reused)."""
    try:
        return SERVER_CLASS.encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def supervise(home: str | Path, master: str, port: int, driver_memory: str, watch_pid: int) -> int:
    """``salespipe dev``'s server: started, restarted on the same port (so the runs'
    ``SALESPIPE_SPARK_REMOTE`` stays right) whenever it dies, and stopped when ``watch_pid``
    (``salespipe dev``, then the ``dagster dev`` it execs into) ends or this process is told to."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    proc, state = launch(home, master, port, driver_memory)
    _warm_up_in_background(state, proc)
    try:
        while not stopping and pid_alive(watch_pid):
            if proc.poll() is not None:
                print(f"Spark Connect server exited ({proc.returncode}); restarting it on port {port}", flush=True)
                proc, state = launch(home, master, port, driver_memory)
                _warm_up_in_background(state, proc)
            time.sleep(1)
    finally:
        terminate(proc.pid)
        if (read_state(home) or state).pid == state.pid:
            state_file(home).unlink(missing_ok=True)
    return 0


def _warm_up_in_background(state: ServerState, proc: subprocess.Popen) -> None:
    """Once the server answers, warm it (``spark_warmup``) without holding up the supervisor."""
    def warm() -> None:
        try:
            wait_ready(state, proc)
            from salespipe_assets.spark_warmup import warm_up

            print(f"Spark Connect server warmed up in {warm_up(state.url):.1f} s", flush=True)
        except Exception as exc:  # best effort: the first run pays the cold start instead
            print(f"Spark Connect server warm-up skipped: {type(exc).__name__}: {exc}", flush=True)

    threading.Thread(target=warm, name="spark-warm-up", daemon=True).start()


def start_supervised(home: str | Path, master: str = "local[2]", driver_memory: str = DEFAULT_DRIVER_MEMORY,
                     timeout: float = START_TIMEOUT) -> ServerState:
    """Start ``supervise`` for this process in a child and wait until the server answers."""
    port = free_port()
    argv = [sys.executable, "-m", "salespipe_assets.spark_server", "supervise", "--home", str(home),
            "--master", master, "--port", str(port), "--driver-memory", driver_memory, "--watch-pid", str(os.getpid())]

    folder = state_dir(home)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "supervisor.log", "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,  # nosec B603
                                preexec_fn=default_signals)  # stays in our group: a Ctrl-C or a group kill reaches it
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the Spark Connect server did not start; see {folder}:\n"
                               f"{log_tail(folder / 'server.log')}")
        state = read_state(home)
        if state is not None and state.port == port and port_open(port):
            return state
        time.sleep(0.3)
    terminate(proc.pid)
    raise TimeoutError(f"the Spark Connect server did not answer on port {port} within {timeout:.0f} s; see {folder}")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sup = sub.add_parser("supervise")
    sup.add_argument("--home", required=True)
    sup.add_argument("--master", default="local[2]")
    sup.add_argument("--port", type=int, required=True)
    sup.add_argument("--driver-memory", default=DEFAULT_DRIVER_MEMORY)
    sup.add_argument("--watch-pid", type=int, required=True)
    args = parser.parse_args()
    sys.exit(supervise(args.home, args.master, args.port, args.driver_memory, args.watch_pid))
