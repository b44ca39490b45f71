"""What an EMR cluster of the ``emr`` Spark target is made of (see docs/emr.md)."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import PurePosixPath

import dagster as dg


def split_s3(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise ValueError(f"expected an s3:// URI, not {uri!r}")
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key.strip("/")


class BootstrapAction(dg.Config):
    name: str
    path: str  # s3:// script run on every node before applications start
    args: list[str] = []


class EMRClusterConfig(dg.Config):
    """What RunJobFlow gets (see docs/emr.md for the roles and their policies)."""

    log_uri: str  # s3://bucket/prefix/ - step stdout/stderr land under <cluster>/steps/<step>/
    release_label: str = "emr-7.5.0"
    primary_instance_type: str = "m5.xlarge"
    core_instance_type: str = "m5.xlarge"
    core_instance_count: int = 2
    service_role: str = "salespipe-emr-service-role"
    instance_profile: str = "salespipe-emr-instance-profile"
    subnet_id: str | None = None
    bootstrap_actions: list[BootstrapAction] = []
    tags: dict[str, str] = {}
    step_concurrency: int = 5  # a day stages its five files side by side
    idle_timeout_seconds: int = 3600  # EMR terminates an idle cluster nobody terminated
    python: str = "/usr/bin/python3.11"  # the steps' interpreter on the nodes
    install_python: bool = True  # add the bootstrap action that installs it with pyarrow


def bootstrap_script(python: str) -> str:
    """Installs the steps' Python and binary dependencies on every node."""
    pins = " ".join(f"{name}=={version(name)}" for name in ("pyarrow", "numpy"))
    package = PurePosixPath(python).name
    return (
        "#!/bin/bash\n"
        "# salespipe: the Python the Spark steps run on (spark_steps needs pyarrow and numpy;\n"
        "# dagster-pipes comes in the steps zip). Runs on every node before Spark starts.\n"
        "set -euo pipefail\n"
        f"command -v {python} >/dev/null || sudo dnf install -y {package} {package}-pip\n"
        f"sudo {python} -m pip install --quiet {pins} boto3\n"
    )
