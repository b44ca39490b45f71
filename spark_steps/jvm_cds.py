"""A class-data-sharing archive for the local Spark driver JVM: a faster start.

A local run starts its own JVM, which loads and verifies thousands of Spark classes
before the first job: about 9 s on two cores. Java 17's dynamic CDS archive keeps those
classes pre-parsed in one file that the JVM maps at start, roughly halving that. Every
run, test and sensor-launched process benefits; data results do not change.

The archive is made once per environment (``make`` runs ``python -m spark_steps.jvm_cds``
after installing, from a small Spark workload) and lives in the virtualenv next to the
Spark jars it describes. Without it, or when the JVM finds it stale (another JDK,
other jars), Spark starts the usual way: the archive is only ever an optimisation.

    python -m spark_steps.jvm_cds [--force]
"""

from __future__ import annotations

import argparse
import os
import subprocess  # nosec B404  # runs this interpreter on a fixed workload, no shell
import sys
import tempfile
from pathlib import Path

from spark_steps.jvm_options import CDS_ENV_VAR, archive_path, cds_java_options

__all__ = ["ENV_VAR", "archive_path", "build", "driver_java_options"]

# The archive's location and the options that map it live in jvm_options (runtime uses
# them to start every local driver; this module only builds the archive).
ENV_VAR = CDS_ENV_VAR
driver_java_options = cds_java_options


def _workload(java_options: str) -> None:
    """One day staged and its week built by the real steps, on a tiny lake: the classes
    a run loads are the classes archived."""
    from spark_steps import build_weekly_fact, stage_file
    from spark_steps.contract import CONTRACT
    from spark_steps.runtime import spark_session

    day, rows = "2024-01-08", range(1, 200)
    lines = {
        "sales": [f"{i},1{i % 3},10{i % 2},{day},3600,1.00,5.00,5.00,0.00,3.00,2.00,0.50" for i in rows],
        "inventory": [f"{day},10{i % 2},1{i % 3},{i}.00,2.00,0,0.00,false," for i in range(6)],
    }
    spark = spark_session("salespipe-cds", "local[2]", {"spark.driver.extraJavaOptions": java_options})
    with tempfile.TemporaryDirectory() as lake:
        (Path(lake) / "raw").mkdir()
        for table, body in lines.items():
            name = f"raw/{table}_{day}.csv"
            (Path(lake) / name).write_text("\n".join([CONTRACT[table].header, *body]) + "\n")
            stage_file.run(spark, lake, table, name, day)
        build_weekly_fact.run(spark, lake, "2024-01-07")
    spark.stop()


def build(force: bool = False) -> Path | None:
    """Make the archive from a small workload in a fresh JVM; None when there is no
    place for it. Written under a temporary name and renamed: a concurrent start never
    maps a half-written file."""
    path = archive_path()
    if path is None or (path.is_file() and not force):
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".spark-driver-", suffix=".jsa", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)  # the JVM creates it at exit
    env = {**os.environ, ENV_VAR: "off"}
    options = f"-XX:ArchiveClassesAtExit={tmp} -Xlog:cds=off -Xlog:cds+dynamic=off"
    done = subprocess.run([sys.executable, "-m", "spark_steps.jvm_cds", "--workload", options], env=env,  # nosec B603  # our interpreter, fixed arguments
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    if done.returncode != 0 or not Path(tmp).is_file():
        Path(tmp).unlink(missing_ok=True)
        tail = "\n".join(done.stderr.strip().splitlines()[-5:])
        raise RuntimeError(f"could not build the Spark CDS archive (exit {done.returncode}):\n{tail}")
    os.replace(tmp, path)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if the archive exists")
    parser.add_argument("--workload", metavar="JAVA_OPTIONS", help=argparse.SUPPRESS)  # build()'s child
    args = parser.parse_args()
    if args.workload is not None:
        _workload(args.workload)
    else:
        print(f"Spark driver CDS archive: {build(force=args.force) or 'off'}")
