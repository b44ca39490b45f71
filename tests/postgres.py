"""A real PostgreSQL server for the tests: Debian's ``postgresql`` package, started on
127.0.0.1 in a temporary data directory and stopped by its PID.

PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user the
package creates (the data directory is given to it). Password authentication is on
(scram-sha-256): the tests' Dagster instances really read DAGSTER_PG_PASSWORD.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from tests.servers import free_port

USER = "salespipe"


def pg_bin() -> Path | None:
    """The newest installed PostgreSQL's bin directory, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def unavailable_reason() -> str | None:
    if pg_bin() is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does it as root)"
    if os.getuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no 'postgres' user to run PostgreSQL as"
    return None


@dataclass
class Postgres:
    port: int
    password: str
    datadir: Path
    proc: subprocess.Popen

    def env(self, db: str) -> dict[str, str]:
        """The DAGSTER_PG_* variables of database ``db``."""
        return {"DAGSTER_PG_HOST": "127.0.0.1", "DAGSTER_PG_PORT": str(self.port), "DAGSTER_PG_DB": db,
                "DAGSTER_PG_USERNAME": USER, "DAGSTER_PG_PASSWORD": self.password}

    def connect(self, db: str = "postgres"):
        import psycopg2

        con = psycopg2.connect(host="127.0.0.1", port=self.port, dbname=db, user=USER, password=self.password)
        con.autocommit = True
        return con

    def create_database(self, db: str) -> dict[str, str]:
        con = self.connect()
        try:
            with con.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{db}"')
        finally:
            con.close()
        return self.env(db)


def _as_server_user(uid: int | None, gid: int | None):
    def preexec() -> None:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_DFL)
        os.setsid()
        if uid is not None:
            os.setgid(gid)
            os.setuid(uid)
    return preexec


@contextmanager
def running_postgres(start_timeout: float = 60) -> Iterator[Postgres]:
    bindir = pg_bin()
    user = pwd.getpwnam("postgres") if os.getuid() == 0 else None
    uid, gid = (user.pw_uid, user.pw_gid) if user else (None, None)
    # not under pytest's tmp_path: its parent is private to root, and the server user must enter
    root = Path(tempfile.mkdtemp(prefix="salespipe-pg-"))
    datadir, pwfile, log = root / "data", root / "pw", root / "server.log"
    password = secrets.token_urlsafe(16)
    pwfile.write_text(password + "\n")
    if user:
        os.chown(root, uid, gid)
        os.chown(pwfile, uid, gid)
    proc = None
    try:
        subprocess.run([str(bindir / "initdb"), "-D", str(datadir), "-U", USER, "--pwfile", str(pwfile),
                        "--auth", "scram-sha-256", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, preexec_fn=_as_server_user(uid, gid), cwd=root)
        port = free_port()
        with open(log, "wb") as out:
            # fsync off: a test database need not survive a power cut, and it is much faster
            proc = subprocess.Popen(
                [str(bindir / "postgres"), "-D", str(datadir), "-h", "127.0.0.1", "-p", str(port),
                 "-k", str(root), "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=200"],
                stdout=out, stderr=subprocess.STDOUT, preexec_fn=_as_server_user(uid, gid), cwd=root)
        server = Postgres(port=port, password=password, datadir=datadir, proc=proc)
        deadline = time.time() + start_timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
            try:
                server.connect().close()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.3)
        yield server
    finally:
        if proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGINT)  # "fast" shutdown: disconnects clients, then exits
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        shutil.rmtree(root, ignore_errors=True)
