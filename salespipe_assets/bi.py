"""Local Superset for the dashboards: its own virtual environment, bootstrap, start and stop.

Superset needs SQLAlchemy < 2 and so cannot share the Dagster environment: it lives in
``.venv-bi/`` (requirements pinned in ``bi/``), keeps its SQLite metadata, secret key,
PID file and log in ``.bi_home/``, and serves on 127.0.0.1:8088. ``up`` is idempotent:
it installs only what is missing, re-applies the repo's dashboard definitions and
starts the server only when it is not already answering.

    python -m salespipe_assets.bi up|down|status      (also: ``salespipe bi up|down``)

Environment: SALESPIPE_BI_HOME, SALESPIPE_BI_VENV, SALESPIPE_BI_PORT, SALESPIPE_WAREHOUSE
(the DuckDB file), SALESPIPE_BI_WAREHOUSE_URI (Snowflake/Athena instead), and
SUPERSET_ADMIN_USER / SUPERSET_ADMIN_PASSWORD.
"""

from __future__ import annotations

import hashlib
import http.cookiejar
import json
import os
import signal
import subprocess  # nosec B404  # fixed argument lists only, never a shell
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from salespipe_assets.processes import restore_signals
from salespipe_assets.settings import PROJECT_ROOT

BI_DIR = PROJECT_ROOT / "bi"
REQUIREMENTS = [BI_DIR / "requirements-bi.txt", BI_DIR / "constraints-bi.txt"]
DASHBOARD_SLUG = "weekly-sales-inventory"
LOCAL_DEFAULT_USER = "admin"
# The documented local-only default (bi/bootstrap.py prints it); SUPERSET_ADMIN_PASSWORD overrides it.
LOCAL_DEFAULT_PASSWORD = "admin"  # nosec B105  # local Superset on 127.0.0.1 only, not a secret


@dataclass(frozen=True)
class BIConfig:
    home: Path = field(default_factory=lambda: Path(os.environ.get("SALESPIPE_BI_HOME") or PROJECT_ROOT / ".bi_home"))
    venv: Path = field(default_factory=lambda: Path(os.environ.get("SALESPIPE_BI_VENV") or PROJECT_ROOT / ".venv-bi"))
    host: str = "127.0.0.1"
    port: int = field(default_factory=lambda: int(os.environ.get("SALESPIPE_BI_PORT", "8088")))

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid_file(self) -> Path:
        return self.home / "superset.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "superset.log"

    def env(self) -> dict:
        return {**os.environ, "SUPERSET_HOME": str(self.home.resolve()),
                "SUPERSET_CONFIG_PATH": str(BI_DIR / "superset_config.py"), "FLASK_APP": "superset"}


def ensure_venv(cfg: BIConfig, echo=print) -> bool:
    """Create the Superset venv and install the pinned requirements if they changed; True if it installed."""
    digest = hashlib.sha1(b"".join(p.read_bytes() for p in REQUIREMENTS), usedforsecurity=False).hexdigest()[:12]
    stamp = cfg.venv / f".installed-{digest}"
    if stamp.exists():
        return False
    python = cfg.venv / "bin" / "python"
    if not python.exists():
        echo(f"creating {cfg.venv} (Superset has its own environment)")
        python_exe = os.environ.get("SALESPIPE_BI_PYTHON", sys.executable)
        subprocess.run([python_exe, "-m", "venv", str(cfg.venv)], check=True)  # nosec B603  # argument list, no shell
    echo("installing Superset and the DuckDB driver (pinned in bi/; a few minutes the first time)")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    install = [*pip, "-r", str(REQUIREMENTS[0]), "-c", str(REQUIREMENTS[1])]
    subprocess.run(install, check=True)  # nosec B603  # argument list, no shell
    for old in cfg.venv.glob(".installed-*"):
        old.unlink()
    stamp.touch()
    return True


def default_warehouse() -> str:
    from salespipe_assets.settings import Settings

    return Settings.from_env().warehouse


def bootstrap(cfg: BIConfig, warehouse: str | None = None) -> None:
    """Migrate, create the admin user, register the warehouse and import the dashboards."""
    cfg.home.mkdir(parents=True, exist_ok=True)
    args = [str(cfg.venv / "bin" / "python"), str(BI_DIR / "bootstrap.py")]
    if not os.environ.get("SALESPIPE_BI_WAREHOUSE_URI"):
        args += ["--duckdb", str(Path(warehouse or default_warehouse()).resolve())]
    with open(cfg.home / "bootstrap.log", "wb") as log:
        proc = subprocess.run(args, env=cfg.env(), cwd=PROJECT_ROOT,  # nosec B603  # argument list, no shell
                              stdout=subprocess.PIPE, stderr=log)
    sys.stdout.write(proc.stdout.decode())
    if proc.returncode != 0:
        raise RuntimeError(f"bi/bootstrap.py failed (exit {proc.returncode}); see {cfg.home / 'bootstrap.log'}:\n"
                           + _tail(cfg.home / "bootstrap.log"))


def _alive(pid: int) -> bool:
    try:
        if os.waitpid(pid, os.WNOHANG) != (0, 0):
            return False  # our child and it has exited (now reaped)
    except ChildProcessError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def running_pid(cfg: BIConfig) -> int | None:
    """The PID in the PID file if that process is still our Superset server."""
    try:
        pid = int(cfg.pid_file.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    return pid if b"gunicorn" in cmdline and _alive(pid) else None


def healthy(cfg: BIConfig, timeout: float = 2) -> bool:
    try:
        health = http_url(f"{cfg.url}/health")
        with urllib.request.urlopen(health, timeout=timeout) as resp:  # nosec B310  # http(s) checked
            return resp.status == 200
    except (OSError, urllib.error.URLError):
        return False


def start(cfg: BIConfig, wait: float = 300) -> int:
    """Start Superset (gunicorn) on cfg.host:cfg.port unless it is running; return its PID."""
    pid = running_pid(cfg)
    if pid is None:
        cfg.home.mkdir(parents=True, exist_ok=True)
        cmd = [str(cfg.venv / "bin" / "gunicorn"), "--bind", f"{cfg.host}:{cfg.port}",
               "--workers", "1", "--worker-class", "gthread", "--threads", "8", "--timeout", "120",
               "--limit-request-line", "0", "--limit-request-field_size", "0", "superset.app:create_app()"]
        with open(cfg.log_file, "ab") as log:
            proc = subprocess.Popen(cmd, env=cfg.env(), cwd=PROJECT_ROOT,  # nosec B603  # argument list, no shell
                                    stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, preexec_fn=restore_signals)  # own group: stop() reaches the workers
        pid = proc.pid
        cfg.pid_file.write_text(str(pid))
    deadline = time.time() + wait
    while True:
        # Alive first: another server answering on the port must not pass for ours.
        if not _alive(pid):
            cfg.pid_file.unlink(missing_ok=True)
            raise RuntimeError(f"Superset exited during start-up; log {cfg.log_file}:\n" + _tail(cfg.log_file))
        if healthy(cfg):
            return pid
        if time.time() > deadline:
            raise TimeoutError(f"Superset did not answer on {cfg.url}/health within {wait:.0f}s; log {cfg.log_file}")
        time.sleep(1)


def stop(cfg: BIConfig, timeout: float = 30) -> bool:
    """Stop the server named in the PID file (its process group); False if none was running."""
    pid = running_pid(cfg)
    if pid is not None:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                break
            deadline = time.time() + wait
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.2)
            if not _alive(pid):
                break
    cfg.pid_file.unlink(missing_ok=True)
    return pid is not None


def up(cfg: BIConfig | None = None, warehouse: str | None = None, echo=print) -> str:
    """Install if needed, bootstrap, start; return the dashboard URL."""
    cfg = cfg or BIConfig()
    if ensure_venv(cfg, echo) and running_pid(cfg):
        echo("requirements changed: restarting Superset")
        stop(cfg)
    bootstrap(cfg, warehouse)
    pid = start(cfg)
    url = f"{cfg.url}/superset/dashboard/{DASHBOARD_SLUG}/"
    echo(f"Superset is up (PID {pid}, log {cfg.log_file}): {url}")
    return url


def down(cfg: BIConfig | None = None, echo=print) -> None:
    cfg = cfg or BIConfig()
    echo("Superset stopped" if stop(cfg) else "Superset was not running")


def http_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host; urllib would also open file: and other schemes."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    return url


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


class SupersetError(RuntimeError):
    pass


class SupersetClient:
    """A minimal Superset REST client: a JWT from /security/login plus the CSRF token
    (bound to the session cookie) that Superset wants on every write."""

    def __init__(self, url: str, username: str, password: str, timeout: float = 30):
        self.url = http_url(url).rstrip("/")
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        token = self._send("POST", "/api/v1/security/login",
                           {"username": username, "password": password, "provider": "db", "refresh": False})
        self._headers = {"Authorization": f"Bearer {token['access_token']}"}
        self._headers["X-CSRFToken"] = self._send("GET", "/api/v1/security/csrf_token/")["result"]

    def _send(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Referer": self.url, **getattr(self, "_headers", {})}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with self._opener.open(req, timeout=self.timeout) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")[:500]
            raise SupersetError(f"{method} {path}: HTTP {exc.code}: {detail}") from None

    def get(self, path: str) -> dict:
        return self._send("GET", path)

    def post(self, path: str, body: dict | None = None) -> dict:
        return self._send("POST", path, body or {})

    def put(self, path: str, body: dict | None = None) -> dict:
        return self._send("PUT", path, body or {})


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    action = argv[0] if argv else "up"
    cfg = BIConfig()
    try:
        if action == "up":
            up(cfg)
        elif action == "down":
            down(cfg)
        elif action == "status":
            pid = running_pid(cfg)
            print(f"Superset running (PID {pid}) at {cfg.url}" if pid else "Superset is not running")
        elif action == "install":
            ensure_venv(cfg)
        else:
            print("usage: python -m salespipe_assets.bi up|down|status|install", file=sys.stderr)
            return 2
    except (RuntimeError, TimeoutError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
