"""What every step program shares: a SparkSession, argument parsing, result reporting.

A step module defines ``add_arguments(parser)`` and ``run(spark, **args) -> dict`` and
ends with ``if __name__ == "__main__": main(run, add_arguments)``. Dagster calls ``run``
in-process with the run's SparkSession; ``spark-submit step.py ...`` goes through
``main``, which reports the result through Dagster Pipes when launched by Pipes and
prints it as JSON otherwise. A lake that cannot be written (``LakeWriteError``) ends the
program with one ``ERROR`` line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from typing import Callable

from spark_steps.jvm_options import local_driver_java_options
from spark_steps.lakefs import LakeWriteError


class StepFailed(Exception):
    """A failure the step explains itself (bad input file); ``result`` says what happened."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


# What every session gets unless configured: also the Connect server's defaults.
SESSION_DEFAULTS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.sources.partitionColumnTypeInference.enabled": "true",
    "spark.sql.parquet.compression.codec": "snappy",
    # Every landed file a partition of its own (no packing of small files), so a line's
    # place in its partition is its line number (one_pass.py); the staged days read back
    # by the fact are one file each anyway. Files above maxPartitionBytes are still split.
    "spark.sql.files.openCostInBytes": str(128 << 20),
}


@functools.cache
def _java_home_once() -> None:
    """The pip JDK when the machine has no Java 17/21 (``java_home``), looked up once per process."""
    from spark_steps.java_home import ensure_java_home

    ensure_java_home()


def spark_session(app_name: str = "salespipe", master: str | None = None, conf: dict | None = None,
                  remote: str | None = None, input_bytes: int | None = None):
    """A classic session (``master``), or with ``remote`` (sc://host:port) a new Spark Connect
    session of its own on that server. ``input_bytes``: the landed bytes a local JVM started
    here is for (its JIT settings, see jvm_options); an existing session is returned as it is."""
    if remote:
        return connect_session(remote, conf)
    # pyspark picks classic or Connect functions by this process-wide flag, which creating a
    # Connect session sets: a process that had one (a test session) switches back here.
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)
    # Python workers must run this interpreter (it has pyarrow), not whatever is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    _java_home_once()
    # SPARK_REMOTE (a Connect server named for the runs) would make the builder refuse a
    # master, and getOrCreate a Connect session: this one is classic.
    remote_env = os.environ.pop("SPARK_REMOTE", None)
    try:
        return _classic_builder(app_name, master, conf, input_bytes).getOrCreate()
    finally:
        if remote_env is not None:
            os.environ["SPARK_REMOTE"] = remote_env


def _classic_builder(app_name: str, master: str | None, conf: dict | None, input_bytes: int | None = None):
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    defaults = dict(SESSION_DEFAULTS)
    if (master or "").startswith("local"):
        # Nothing to reach from outside: keep the driver on the loopback interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        defaults.update({"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1",
                         "spark.ui.enabled": "false"})
    settings = {**defaults, **(conf or {})}
    if (master or "").startswith("local"):
        settings["spark.driver.extraJavaOptions"] = local_driver_java_options(
            settings.get("spark.driver.extraJavaOptions", ""), input_bytes)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder


def connect_session(remote: str, conf: dict | None = None):
    """A new Spark Connect session (its own temporary views, cache and SQL conf). Static
    settings in ``conf`` (driver memory, ...) are the server's and are skipped."""
    from pyspark.sql import SparkSession
    from pyspark.sql.connect.client.retries import DefaultPolicy

    session = SparkSession.builder.remote(remote).create()
    # The client's default rides out ten minutes of an unreachable server; a server that
    # is gone should fail the step within seconds (`salespipe dev` restarts it meanwhile).
    session.client.set_retry_policies([DefaultPolicy(max_retries=6, max_backoff=5000)])
    runtime = {**SESSION_DEFAULTS, **(conf or {})}
    for key, value in runtime.items():
        if key.startswith("spark.sql."):
            session.conf.set(key, value)
    return session


def use_session_kind(session) -> None:
    """Make pyspark's functions match ``session`` (classic or Connect) in this process."""
    if is_connect(session):
        os.environ["SPARK_CONNECT_MODE_ENABLED"] = "1"
    else:
        os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def is_connect(session) -> bool:
    return type(session).__module__.startswith("pyspark.sql.connect")


def observation(df, name: str):
    """An Observation of the DataFrame's own kind (classic or Spark Connect). pyspark's
    ``Observation()`` picks the kind from the environment (SPARK_CONNECT_MODE_ENABLED),
    which is wrong for a classic session in a process that has made a Connect one."""
    if type(df).__module__.startswith("pyspark.sql.connect"):
        from pyspark.sql.connect.observation import Observation as ConnectObservation

        return ConnectObservation(name)
    from pyspark.sql import Observation

    observed = object.__new__(Observation)  # not Observation.__new__: it may hand out a Connect one
    observed.__init__(name)
    return observed


def main(run: Callable[..., dict], add_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True, help="lake root: a directory or s3://bucket/prefix")
    parser.add_argument("--run-id", default="spark-submit")
    add_arguments(parser)
    args = vars(parser.parse_args())
    spark = spark_session()
    try:
        result, failure = run(spark, **args), None
    except StepFailed as exc:
        result, failure = exc.result, str(exc)
    except LakeWriteError as exc:
        print(f"ERROR {exc}", file=sys.stderr)
        sys.exit(1)
    _report(result, failure)
    sys.exit(2 if failure else 0)


def _report(result: dict, failure: str | None) -> None:
    if os.environ.get("DAGSTER_PIPES_CONTEXT"):  # launched through Dagster Pipes
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            pipes.report_custom_message({"result": result, "failure": failure})
    print(json.dumps({"result": result, "failure": failure}, default=str))
