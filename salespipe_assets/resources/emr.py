"""The ``emr`` Spark target: one transient EMR cluster per run, steps added through Pipes.

``PipesEMRClient`` starts a new cluster on every call; a run here is one cluster, so this
module is the small Pipes client that adds steps to a run-scoped cluster instead:

- the cluster is created by the run's first Spark step (a run without one costs nothing),
  named ``salespipe-<run id>`` and tagged with the run id;
- every Spark asset adds one step: ``spark-submit`` of ``emr_entry.py`` with the steps zip
  (``spark_package.py``) in ``--py-files``, both uploaded to S3 under a content hash;
- the step reads its Pipes context from S3 and writes its messages (logs, the result) to
  S3 (``PipesS3ContextInjector`` / ``PipesS3MessageReader``);
- a failed step fails its asset, without retry, with the step's state-change reason and
  the tail of its stderr from the cluster's log URI;
- ``teardown_after_execution`` terminates the cluster. Dagster runs it when the run ends:
  on success, on failure, and on cancellation (cancelling a run interrupts its process;
  the waiting step raises ``DagsterExecutionInterruptedError`` and the run's resources are
  torn down). It also terminates any other active cluster named for the run, which covers
  a RunJobFlow whose response was lost. An idle auto-termination policy on the cluster is
  the last line of defence should the orchestrator itself be killed.

Throttling and transient API errors are retried by botocore (standard mode, backoff); the
step poll also rides out a few consecutive transient failures.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from contextlib import contextmanager
from pathlib import PurePosixPath

import boto3
import dagster as dg
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.pipes import PipesS3ContextInjector, PipesS3MessageReader
from pydantic import PrivateAttr

from salespipe_assets.resources.emr_config import BootstrapAction, EMRClusterConfig, bootstrap_script, split_s3
from salespipe_assets.resources.spark import SparkRuntime, step_failure
from salespipe_assets.resources.spark_package import ENTRY_PROGRAM, package_bytes

ACTIVE_CLUSTER_STATES = ["STARTING", "BOOTSTRAPPING", "RUNNING", "WAITING"]
FINAL_STEP_STATES = {"COMPLETED", "CANCELLED", "FAILED", "INTERRUPTED"}
RUN_TAG = "salespipe:dagster-run-id"
STDERR_TAIL_LINES = 40
_TRANSIENT_CODES = {"ThrottlingException", "Throttling", "RequestLimitExceeded", "TooManyRequestsException",
                    "InternalServerError", "InternalFailure", "ServiceUnavailable", "SlowDown"}


def _transient(exc: Exception) -> bool:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error.get("Code") in _TRANSIENT_CODES or status >= 500
    return isinstance(exc, BotoCoreError)


class _RunScopedS3MessageReader(PipesS3MessageReader):
    """Pipes message chunks under the run's prefix instead of the bucket's root."""

    def __init__(self, *, prefix: str, **kwargs):
        super().__init__(**kwargs)
        self.prefix = prefix

    @contextmanager
    def get_params(self):
        with super().get_params() as params:
            yield {**params, "key_prefix": f"{self.prefix}/{params['key_prefix']}"}


class EMRSparkRuntime(SparkRuntime):
    """``run_step`` on a transient EMR cluster (``master`` is not used)."""

    artifacts_uri: str  # s3://bucket/prefix for the code, the bootstrap script and Pipes files
    cluster: EMRClusterConfig
    existing_cluster_id: str | None = None  # add steps to this cluster; never terminate it
    region_name: str | None = None
    poll_seconds: float = 15.0
    max_poll_seconds: float = 60.0
    pipes_interval_seconds: float = 10.0
    stderr_wait_seconds: float = 180.0  # EMR copies step logs to S3 a little after the step
    forward_driver_output: bool = True  # the driver's stdout/stderr as Pipes log messages
    api_max_attempts: int = 10

    _lock = PrivateAttr(default_factory=threading.Lock)
    _stopping = PrivateAttr(default_factory=threading.Event)
    _run_id = PrivateAttr(default=None)
    _cluster_id = PrivateAttr(default=None)
    _launch_attempted = PrivateAttr(default=False)
    _artifacts = PrivateAttr(default=None)
    _active_steps = PrivateAttr(default_factory=set)
    _emr = PrivateAttr(default=None)
    _s3 = PrivateAttr(default=None)

    # -- lifecycle ----------------------------------------------------------------
    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Fresh state for each run: copies of a resource may share their private objects.
        self._lock, self._stopping, self._active_steps = threading.Lock(), threading.Event(), set()
        self._cluster_id, self._launch_attempted, self._artifacts = None, False, None
        self._run_id = context.run.run_id if context.run else "no-run"
        self._emr = self.client("emr")
        self._s3 = self.client("s3")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        self._stopping.set()  # waiting steps stop polling; no new step or cluster starts
        with self._lock:
            if self.existing_cluster_id:
                self._cancel_active_steps(context)
            elif self._launch_attempted:
                self._terminate(context)

    def client(self, service: str):
        retries = {"mode": "standard", "max_attempts": self.api_max_attempts}
        return boto3.session.Session(region_name=self.region_name).client(service, config=Config(retries=retries))

    @property
    def cluster_name(self) -> str:
        return f"salespipe-{self._run_id}"

    # -- the interface the assets call -------------------------------------------------
    def run_step(self, context: dg.AssetExecutionContext, step: str, input_bytes: int | None = None, **args) -> dict:
        # input_bytes picks a local JVM's JIT settings; the cluster's JVMs are EMR's
        cluster_id = self._ensure_cluster(context)
        bucket, prefix = split_s3(self.artifacts_uri)
        pipes_prefix = f"{prefix}/pipes/{self._run_id}".lstrip("/")
        reader = _RunScopedS3MessageReader(prefix=f"{pipes_prefix}/messages", bucket=bucket, client=self._s3,
                                           interval=self.pipes_interval_seconds,
                                           include_stdio_in_messages=self.forward_driver_output)
        injector = PipesS3ContextInjector(bucket=bucket, client=self._s3, key_prefix=f"{pipes_prefix}/context/")
        name = " ".join([step, *(str(v) for k, v in args.items() if k != "lake")])[:256]
        with dg.open_pipes_session(context=context, context_injector=injector, message_reader=reader,
                                   extras={"step": step}) as session:
            step_id = self._add_step(cluster_id, name, self.step_arguments(step, args, session))
            session.report_launched({"extras": {"cluster_id": cluster_id, "step_id": step_id}})
            context.log.info(f"[emr] step {step_id} '{name}' added to cluster {cluster_id}")
            try:
                status = self._wait_for_step(context, cluster_id, step_id, name)
            finally:
                self._active_steps.discard(step_id)
        reported = [m for m in session.get_custom_messages() if isinstance(m, dict) and "result" in m]
        ids = {"cluster_id": cluster_id, "step_id": step_id}
        if reported and reported[-1]["failure"]:  # the step explained its own failure
            raise step_failure(reported[-1]["failure"], reported[-1]["result"], ids)
        if status["State"] != "COMPLETED":
            raise self._step_failure(cluster_id, step_id, name, status)
        if not reported:
            raise dg.Failure(f"EMR step {step_id} '{name}' completed but reported no result through Pipes",
                             metadata=ids, allow_retries=False)
        return reported[-1]["result"]

    # -- cluster ------------------------------------------------------------------------
    def _ensure_cluster(self, context) -> str:
        with self._lock:
            if self._stopping.is_set():
                raise dg.Failure("the run is ending: no new EMR step is started", allow_retries=False)
            if self._cluster_id:
                return self._cluster_id
            self._artifacts = self._upload_artifacts(context)
            if self.existing_cluster_id:
                state = self._emr.describe_cluster(ClusterId=self.existing_cluster_id)["Cluster"]["Status"]["State"]
                if state not in ("RUNNING", "WAITING"):
                    raise dg.Failure(f"EMR cluster {self.existing_cluster_id} is {state}, not running",
                                     allow_retries=False)
                self._cluster_id = self.existing_cluster_id
                return self._cluster_id
            self._launch_attempted = True  # from here on, teardown looks for the cluster
            self._cluster_id = self._emr.run_job_flow(**self.job_flow_params())["JobFlowId"]
            region = self._emr.meta.region_name
            context.log.info(
                f"[emr] launched cluster {self._cluster_id} ({self.cluster_name}) for this run: "
                f"https://{region}.console.aws.amazon.com/emr/home?region={region}#/clusterDetails/{self._cluster_id}")
            return self._cluster_id

    def job_flow_params(self) -> dict:
        c = self.cluster
        groups = [{"Name": "primary", "InstanceRole": "MASTER", "Market": "ON_DEMAND",
                   "InstanceType": c.primary_instance_type, "InstanceCount": 1}]
        if c.core_instance_count:
            groups.append({"Name": "core", "InstanceRole": "CORE", "Market": "ON_DEMAND",
                           "InstanceType": c.core_instance_type, "InstanceCount": c.core_instance_count})
        instances = {"InstanceGroups": groups, "KeepJobFlowAliveWhenNoSteps": True, "TerminationProtected": False}
        if c.subnet_id:
            instances["Ec2SubnetId"] = c.subnet_id
        actions = [{"Name": a.name, "ScriptBootstrapAction": {"Path": a.path, "Args": list(a.args)}}
                   for a in c.bootstrap_actions]
        if c.install_python:
            actions.insert(0, {"Name": "salespipe python",
                               "ScriptBootstrapAction": {"Path": self._artifacts["bootstrap"], "Args": []}})
        tags = {**c.tags, RUN_TAG: self._run_id}
        return {
            "Name": self.cluster_name,
            "ReleaseLabel": c.release_label,
            "LogUri": c.log_uri,
            "Applications": [{"Name": "Spark"}],
            "Instances": instances,
            "BootstrapActions": actions,
            # The steps' own S3 access (pyarrow, boto3) needs a region; EMR nodes have none set.
            "Configurations": [{"Classification": "spark-env", "Configurations": [
                {"Classification": "export", "Properties": {"AWS_REGION": self._emr.meta.region_name}}]}],
            "JobFlowRole": c.instance_profile,
            "ServiceRole": c.service_role,
            "VisibleToAllUsers": True,
            "StepConcurrencyLevel": c.step_concurrency,
            "AutoTerminationPolicy": {"IdleTimeout": c.idle_timeout_seconds},
            "Tags": [{"Key": k, "Value": v} for k, v in sorted(tags.items())],
        }

    def _upload_artifacts(self, context) -> dict[str, str]:
        """Steps zip, entry program and bootstrap script under code/<content hash>/, once."""
        files = {"py_files": ("salespipe_steps.zip", package_bytes()),
                 "entry": ("emr_entry.py", ENTRY_PROGRAM.read_bytes()),
                 "bootstrap": ("install_python.sh", bootstrap_script(self.cluster.python).encode())}
        digest = hashlib.sha256(b"".join(data for _, data in files.values())).hexdigest()[:16]
        bucket, prefix = split_s3(self.artifacts_uri)
        uris = {}
        for role, (name, data) in files.items():
            key = f"{prefix}/code/{digest}/{name}".lstrip("/")
            try:
                self._s3.head_object(Bucket=bucket, Key=key)
            except ClientError:
                self._s3.put_object(Bucket=bucket, Key=key, Body=data)
                context.log.info(f"[emr] uploaded s3://{bucket}/{key}")
            uris[role] = f"s3://{bucket}/{key}"
        return uris

    # -- steps ------------------------------------------------------------------------
    def step_arguments(self, step: str, args: dict, session) -> list[str]:
        conf = {
            "spark.pyspark.python": self.cluster.python,
            "spark.pyspark.driver.python": self.cluster.python,
            **self.conf,
        }
        command = ["spark-submit", "--deploy-mode", "client", "--py-files", self._artifacts["py_files"]]
        for key, value in conf.items():
            command += ["--conf", f"{key}={value}"]
        command += [self._artifacts["entry"], "--step", step]
        for flag, value in session.get_bootstrap_cli_arguments().items():
            command += [flag, value]
        command += ["--s3-region", self._s3.meta.region_name]  # EMR nodes have no default region
        command += ["--run-id", self._run_id]
        for key, value in args.items():
            # A range's files or weeks travel as JSON (``--files '[{...}]'``, ``--week-starts '[...]'``);
            # the steps parse those arguments with json.loads.
            text = json.dumps(value, separators=(",", ":")) if isinstance(value, (list, dict)) else str(value)
            command += [f"--{key.replace('_', '-')}", text]
        return command

    def _add_step(self, cluster_id: str, name: str, command: list[str]) -> str:
        with self._lock:
            if self._stopping.is_set():
                raise dg.Failure("the run is ending: no new EMR step is started", allow_retries=False)
            step_id = self._emr.add_job_flow_steps(JobFlowId=cluster_id, Steps=[{
                "Name": name,
                "ActionOnFailure": "CONTINUE",  # the run's other steps go on; teardown ends the cluster
                "HadoopJarStep": {"Jar": "command-runner.jar", "Args": command},
            }])["StepIds"][0]
            self._active_steps.add(step_id)
            return step_id

    def _wait_for_step(self, context, cluster_id: str, step_id: str, name: str) -> dict:
        delay, failures, last_state = self.poll_seconds, 0, None
        while True:
            if self._stopping.wait(delay):
                raise dg.Failure(f"the run ended while EMR step {step_id} '{name}' was {last_state}",
                                 allow_retries=False)
            try:
                status = self._emr.describe_step(ClusterId=cluster_id, StepId=step_id)["Step"]["Status"]
                failures = 0
            except (ClientError, BotoCoreError) as exc:
                failures += 1
                if not _transient(exc) or failures > 5:
                    raise
                context.log.warning(f"[emr] polling step {step_id}: {exc} (will retry)")
                continue
            if status["State"] != last_state:
                last_state = status["State"]
                context.log.info(f"[emr] step {step_id} '{name}': {last_state}")
            if last_state in FINAL_STEP_STATES:
                return status
            delay = min(delay * 1.5, self.max_poll_seconds)

    def _step_failure(self, cluster_id: str, step_id: str, name: str, status: dict) -> dg.Failure:
        details = status.get("FailureDetails") or {}
        reasons = [details.get("Reason"), details.get("Message"), (status.get("StateChangeReason") or {}).get("Message")]
        if status["State"] in ("CANCELLED", "INTERRUPTED"):  # often the cluster's doing
            cluster = self._emr.describe_cluster(ClusterId=cluster_id)["Cluster"]["Status"]
            reasons.append(f"cluster {cluster['State']}: {(cluster.get('StateChangeReason') or {}).get('Message')}")
        reason = "; ".join(r for r in reasons if r) or "EMR gave no reason"
        stderr_uri, tail = self._stderr_tail(cluster_id, step_id)
        description = f"EMR step {step_id} '{name}' on cluster {cluster_id} {status['State']}: {reason}"
        if tail:
            description += f"\n--- last lines of {stderr_uri} ---\n{tail}"
        metadata = {"cluster_id": cluster_id, "step_id": step_id, "state": status["State"], "reason": reason,
                    "stderr": dg.MetadataValue.path(details.get("LogFile") or stderr_uri),
                    "stderr_tail": dg.MetadataValue.text(tail or "(not available)")}
        return dg.Failure(description=description, metadata=metadata, allow_retries=False)

    def _stderr_tail(self, cluster_id: str, step_id: str) -> tuple[str, str | None]:
        bucket, prefix = split_s3(self.cluster.log_uri)
        key = f"{prefix}/{cluster_id}/steps/{step_id}/stderr.gz".lstrip("/")
        uri, waited = f"s3://{bucket}/{key}", 0.0
        while True:
            try:
                body = self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                break
            except ClientError:
                if waited >= self.stderr_wait_seconds or self._stopping.is_set():
                    return uri, None
                step = min(5.0, self.stderr_wait_seconds - waited)
                self._stopping.wait(step)
                waited += step
        try:
            text = gzip.decompress(body).decode("utf-8", "replace")
        except OSError:
            text = body.decode("utf-8", "replace")
        return uri, "\n".join(text.rstrip().splitlines()[-STDERR_TAIL_LINES:])

    # -- teardown ------------------------------------------------------------------
    def _terminate(self, context) -> None:
        ids = {self._cluster_id} - {None}
        paginator = self._emr.get_paginator("list_clusters")
        for page in paginator.paginate(ClusterStates=ACTIVE_CLUSTER_STATES):
            ids |= {c["Id"] for c in page["Clusters"] if c["Name"] == self.cluster_name}
        if not ids:
            context.log.warning(f"[emr] no active cluster named {self.cluster_name} to terminate")
            return
        self._emr.terminate_job_flows(JobFlowIds=sorted(ids))
        context.log.info(f"[emr] terminating cluster(s) {', '.join(sorted(ids))} of this run")

    def _cancel_active_steps(self, context) -> None:
        if not (self._cluster_id and self._active_steps):
            return
        steps = sorted(self._active_steps)
        try:
            self._emr.cancel_steps(ClusterId=self._cluster_id, StepIds=steps,
                                   StepCancellationOption="TERMINATE_PROCESS")
            context.log.info(f"[emr] cancelled steps {', '.join(steps)} on cluster {self._cluster_id} (kept running)")
        except (ClientError, BotoCoreError) as exc:
            context.log.error(f"[emr] could not cancel steps {', '.join(steps)} on {self._cluster_id}: {exc}")


def emr_runtime_from_env(environ: Mapping[str, str] | None = None) -> EMRSparkRuntime:
    """The ``emr`` target from ``SALESPIPE_EMR_*`` variables (listed in docs/emr.md)."""
    env = os.environ if environ is None else environ

    def get(name: str) -> str | None:
        return env.get(f"SALESPIPE_EMR_{name}") or None

    missing = [f"SALESPIPE_EMR_{n}" for n in ("ARTIFACTS_URI", "LOG_URI") if not get(n)]
    if missing:
        raise ValueError(f"SALESPIPE_SPARK_MASTER=emr needs {' and '.join(missing)} (see docs/emr.md)")
    cluster: dict = {"log_uri": get("LOG_URI")}
    for field, cast in (("release_label", str), ("primary_instance_type", str), ("core_instance_type", str),
                        ("core_instance_count", int), ("service_role", str), ("instance_profile", str),
                        ("subnet_id", str), ("step_concurrency", int), ("idle_timeout_seconds", int),
                        ("python", str)):
        if (value := get(field.upper())) is not None:
            cluster[field] = cast(value)
    if tags := get("TAGS"):  # key=value,key=value
        cluster["tags"] = dict(pair.split("=", 1) for pair in tags.split(","))
    if scripts := get("BOOTSTRAP_ACTIONS"):  # s3://script,s3://script
        cluster["bootstrap_actions"] = [BootstrapAction(name=PurePosixPath(p).name, path=p) for p in scripts.split(",")]
    return EMRSparkRuntime(artifacts_uri=get("ARTIFACTS_URI"), cluster=EMRClusterConfig(**cluster),
                           existing_cluster_id=get("CLUSTER_ID"),
                           region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"))
