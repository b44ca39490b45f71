"""The program every EMR step runs: one ``spark_steps`` program under Dagster Pipes.

    spark-submit --deploy-mode client --py-files s3://.../salespipe_steps-<hash>.zip \
        s3://.../emr_entry.py --step stage_file \
        --dagster-pipes-context <b64> --dagster-pipes-messages <b64> \
        --lake s3://bucket/lake --run-id <dagster run> --table sales ...

Uploaded on its own and run as spark-submit's main file, so it imports nothing from
``salespipe_assets`` and no Dagster beyond ``dagster_pipes`` (both it and ``spark_steps``
come from the zip). The Pipes context is read from, and the messages written to, S3: the
one channel between a cluster and the orchestrator. The step's result travels as a Pipes
custom message ``{"result": ..., "failure": ...}``; a failure the step explains itself
(``StepFailed``) also exits with 2, so EMR marks the step FAILED.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

PIPES_CONTEXT = "DAGSTER_PIPES_CONTEXT"
PIPES_MESSAGES = "DAGSTER_PIPES_MESSAGES"


def parse(argv: list[str]):
    """-> (step module, {pipes env name: encoded params}, S3 region, the step's own arguments)."""
    outer = argparse.ArgumentParser(prog="emr_entry")
    outer.add_argument("--step", required=True)
    outer.add_argument("--dagster-pipes-context", required=True)
    outer.add_argument("--dagster-pipes-messages", required=True)
    outer.add_argument("--s3-region", default=None, help="region of the Pipes bucket")
    known, rest = outer.parse_known_args(argv)
    module = importlib.import_module(f"spark_steps.{known.step}")
    inner = argparse.ArgumentParser(prog=known.step)
    inner.add_argument("--lake", required=True)
    inner.add_argument("--run-id", default="emr")
    module.add_arguments(inner)
    pipes = {PIPES_CONTEXT: known.dagster_pipes_context, PIPES_MESSAGES: known.dagster_pipes_messages}
    return module, pipes, known.s3_region, vars(inner.parse_args(rest))


def run(argv: list[str], spark=None, s3_client=None, message_interval: float = 10) -> int:
    """Run the step; return the process exit code. ``spark`` defaults to a new session."""
    import boto3
    from dagster_pipes import (
        PipesContext,
        PipesMappingParamsLoader,
        PipesS3ContextLoader,
        PipesS3MessageWriter,
    )

    from spark_steps.runtime import StepFailed, spark_session

    module, pipes_params, region, args = parse(argv)
    s3 = s3_client or boto3.client("s3", region_name=region)
    with PipesContext(PipesMappingParamsLoader(pipes_params), PipesS3ContextLoader(s3),
                      PipesS3MessageWriter(s3, interval=message_interval)) as pipes:
        step = module.__name__.rsplit(".", 1)[-1]
        pipes.log.info(f"{step} starting: {json.dumps(args, sort_keys=True)}")
        try:
            result, failure = module.run(spark or spark_session(app_name=f"salespipe-{step}"), **args), None
        except StepFailed as exc:
            result, failure = exc.result, str(exc)
        # Dates and decimals of the result (preview, totals) go as strings.
        pipes.report_custom_message(json.loads(json.dumps({"result": result, "failure": failure}, default=str)))
        pipes.log.info(f"{step} {'failed: ' + failure if failure else 'finished'}")
    return 2 if failure else 0


if __name__ == "__main__":
    # On EMR, Spark reads and writes s3:// itself (EMRFS): no local copy of the lake (LakeFS).
    os.environ.setdefault("SALESPIPE_SPARK_S3", "native")
    os.environ.setdefault("SALESPIPE_SPARK_S3_SCHEME", "s3")
    sys.exit(run(sys.argv[1:]))
