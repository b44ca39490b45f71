"""deploy/: the compose file, the image and the workspace they share, checked offline.

There is no Docker engine here. The compose file is parsed and its references are checked
against what exists: every command is run with ``--help`` by the venv's own executables
(click and argparse reject an unknown option or subcommand even then), every file the
Dockerfile copies exists, every variable the postgres profile reads is set, the gRPC
address of the workspace is the code server's. ``docker compose config`` (or Debian's
``docker-compose config``) also validates it against the Compose schema where installed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from salespipe_assets.instance import PG_ENV, instance_yaml
from salespipe_assets.settings import PROJECT_ROOT, Settings

DEPLOY = PROJECT_ROOT / "deploy"
BIN = Path(sys.executable).parent
IMAGE_SERVICES = {"code-server", "spark", "webserver", "daemon"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def _workspace_in_image() -> str:
    copies = re.findall(r"^COPY (.+)$", (DEPLOY / "Dockerfile").read_text(), re.M)
    return next(line.split()[-1] for line in copies if line.startswith("deploy/workspace.yaml"))


def test_the_services_and_their_image(compose):
    services = compose["services"]
    assert set(services) == {"postgres"} | IMAGE_SERVICES
    assert all(services[name]["image"] == "salespipe:latest" for name in IMAGE_SERVICES)
    assert services["code-server"]["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    for line in re.findall(r"^COPY (.+)$", (DEPLOY / "Dockerfile").read_text(), re.M):
        for src in line.split()[:-1]:  # relative to the build context, the project root
            assert (PROJECT_ROOT / src).exists(), f"the Dockerfile copies {src}, which does not exist"
    assert "python -m salespipe_assets.instance postgres" in (DEPLOY / "Dockerfile").read_text()


def test_every_command_exists_with_these_options(compose):
    for name in sorted(IMAGE_SERVICES):
        command = compose["services"][name]["command"]
        exe = BIN / command[0]
        assert exe.exists(), f"{name}: no {command[0]} in the image's venv"
        check = subprocess.run([str(exe), *command[1:], "--help"], capture_output=True, text=True, cwd=PROJECT_ROOT)
        assert check.returncode == 0, f"{name}: {command}: {check.stderr[-500:]}"
        for module in [command[i + 1] for i, arg in enumerate(command) if arg in ("-m",)]:
            assert subprocess.run([sys.executable, "-c", f"import importlib.util as u; assert u.find_spec('{module}')"],
                                  cwd=PROJECT_ROOT).returncode == 0, f"{name}: no module {module}"


def test_webserver_and_daemon_load_the_code_server_the_image_holds(compose):
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    grpc = entry["grpc_server"]
    code_server = compose["services"]["code-server"]["command"]
    assert grpc["host"] == "code-server" and str(grpc["port"]) == code_server[code_server.index("-p") + 1]
    assert grpc["location_name"] == code_server[code_server.index("--location-name") + 1]
    in_image = _workspace_in_image()
    for name in ("webserver", "daemon"):
        command = compose["services"][name]["command"]
        assert command[command.index("-w") + 1] == in_image


def test_the_instance_settings_come_from_the_environment_and_the_password_from_outside(compose):
    services = compose["services"]
    password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert password.startswith("${DAGSTER_PG_PASSWORD")  # set where compose runs, not here
    for name in ("code-server", "webserver", "daemon"):
        env = services[name]["environment"]
        assert env["SALESPIPE_INSTANCE"] == "postgres"
        assert set(PG_ENV.values()) <= set(env), name
        assert env["DAGSTER_PG_HOST"] == "postgres" and env["DAGSTER_PG_PASSWORD"] == password
        assert env["DAGSTER_PG_USERNAME"] == services["postgres"]["environment"]["POSTGRES_USER"]
        assert env["DAGSTER_PG_DB"] == services["postgres"]["environment"]["POSTGRES_DB"]
        salespipe_env = {k: str(v) for k, v in env.items() if k.startswith("SALESPIPE_")}
        old = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("SALESPIPE_")}
        try:
            os.environ.update(salespipe_env)
            settings = Settings.from_env()  # the settings parse
        finally:
            for k in salespipe_env:
                os.environ.pop(k, None)
            os.environ.update(old)
        assert settings.instance == "postgres" and settings.max_runtime == int(env["SALESPIPE_MAX_RUNTIME"])
    assert all(f"env: {var}" in instance_yaml("postgres") for var in PG_ENV.values())


def test_the_spark_server_is_where_the_runs_look_for_it(compose):
    spark = compose["services"]["spark"]
    assert spark["network_mode"] == "service:code-server"  # it binds to 127.0.0.1 of the runs' container
    command = spark["command"]
    remote = compose["services"]["code-server"]["environment"]["SALESPIPE_SPARK_REMOTE"]
    assert remote == f"sc://127.0.0.1:{command[command.index('--port') + 1]}"
    assert spark["volumes"] == compose["services"]["code-server"]["volumes"]  # it reads the same lake


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_accepts_it():
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed: the checks above stand in")
    result = subprocess.run([*cli, "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"], capture_output=True,
                            text=True, env={**os.environ, "DAGSTER_PG_PASSWORD": "placeholder"}, cwd=DEPLOY)
    assert result.returncode == 0, result.stderr
    missing = subprocess.run([*cli, "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"], capture_output=True,
                             text=True, env={k: v for k, v in os.environ.items() if k != "DAGSTER_PG_PASSWORD"},
                             cwd=DEPLOY)
    assert missing.returncode != 0 and "DAGSTER_PG_PASSWORD" in missing.stderr
