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
import json
import os
import sys
from typing import Callable

from spark_steps.lakefs import LakeWriteError


class StepFailed(Exception):
    """A failure the step explains itself (bad input file); ``result`` says what happened."""

    def __init__(self, message: str, result: dict):
        super().__init__(message)
        self.result = result


def spark_session(app_name: str = "salespipe", master: str | None = None, conf: dict | None = None):
    from pyspark.sql import SparkSession

    # Python workers must run this interpreter (it has pyarrow), not whatever is on PATH.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    if master:
        builder = builder.master(master)
    defaults = {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "8",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.sources.partitionColumnTypeInference.enabled": "true",
        "spark.sql.parquet.compression.codec": "snappy",
    }
    if (master or "").startswith("local"):
        # Nothing to reach from outside: keep the driver on the loopback interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        defaults.update({"spark.driver.bindAddress": "127.0.0.1", "spark.driver.host": "127.0.0.1",
                         "spark.ui.enabled": "false"})
    settings = {**defaults, **(conf or {})}
    if (master or "").startswith("local"):
        from spark_steps.jvm_cds import driver_java_options

        options = driver_java_options(settings.get("spark.driver.extraJavaOptions", ""))
        if options:
            settings["spark.driver.extraJavaOptions"] = options
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder.getOrCreate()


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
