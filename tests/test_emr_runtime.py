"""The ``emr`` Spark target: one transient cluster per run, terminated whatever happens.

Stand-ins, said plainly: a moto server (``ThreadedMotoServer``, in this process, on
127.0.0.1) plays the EMR and S3 APIs. moto never runs or finishes a step by itself, so
``ClusterPlayer`` below plays the cluster's part through moto's backend: it takes each
step's spark-submit command, fetches the entry program and steps zip it names from moto's
S3, and either runs that uploaded entry program on this process's local Spark (it reads
its Pipes context from and writes its messages to moto's S3, as it would on EMR) and then
marks the step COMPLETED, or writes a stderr log under the log URI and marks the step
FAILED, or leaves it RUNNING for the cancellation test. Everything on the Dagster side is
real: the jobs, a temporary Dagster instance, the run-scoped cluster, Pipes over S3,
resource teardown, and Dagster's own run-cancellation thread (the one a run worker uses).
"""

from __future__ import annotations

import datetime as dt
import gzip
import importlib.util
import json
import math
import threading
import time
import zipfile
from pathlib import Path

import boto3
from botocore.awsrequest import AWSResponse
import dagster as dg
import duckdb
import pytest
from dagster._core.execution.run_cancellation_thread import start_run_cancellation_thread

from salespipe_assets.datagen import generate
from salespipe_assets.jobs import DAILY_ASSETS, WEEKLY_ASSETS, daily_job, weekly_job
from salespipe_assets.reference import reference_fact
from salespipe_assets.resources import resources_for
from salespipe_assets.resources.emr import RUN_TAG, EMRClusterConfig, EMRSparkRuntime, emr_runtime_from_env, split_s3
from salespipe_assets.settings import Settings
from spark_steps.contract import TABLES
from spark_steps.fact import FACT_COLUMNS
from tests.servers import free_port

ACCOUNT, REGION = "123456789012", "us-east-1"
ARTIFACTS, LOGS = "s3://salespipe-artifacts/emr", "s3://salespipe-logs/emr/"
DAY, WEEK = "2024-01-08", "2024-01-07"  # a Monday and its week's Sunday


@pytest.fixture(scope="module")
def aws():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
           "AWS_DEFAULT_REGION": REGION, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        s3 = boto3.client("s3")
        for uri in (ARTIFACTS, LOGS):
            s3.create_bucket(Bucket=split_s3(uri)[0])
        from moto.backends import get_backend

        backend = get_backend("emr")[ACCOUNT][REGION]
        try:
            yield {"s3": s3, "emr": boto3.client("emr"), "backend": backend}
            # whatever each test did, no cluster of this module may be left running
            running = {c.id: c.state for c in backend.clusters.values() if not c.state.startswith("TERMINATED")}
            assert not running, f"clusters left running: {running}"
        finally:
            server.stop()


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("emr") / "lake"
    generate(root, dt.date.fromisoformat(DAY), 1, scale=0.002, seed=11, progress=False)
    return root


def _runtime(**overrides) -> EMRSparkRuntime:
    cluster = EMRClusterConfig(log_uri=LOGS, release_label="emr-7.5.0", primary_instance_type="m5.xlarge",
                               core_instance_type="r5.2xlarge", core_instance_count=3,
                               service_role="test-emr-service-role", instance_profile="test-emr-instance-profile",
                               tags={"team": "analytics"}, step_concurrency=5)
    settings = dict(artifacts_uri=ARTIFACTS, cluster=cluster, region_name=REGION, poll_seconds=0.2,
                    max_poll_seconds=1.0, pipes_interval_seconds=0.5, stderr_wait_seconds=5,
                    forward_driver_output=False, api_max_attempts=3)
    return EMRSparkRuntime(**{**settings, **overrides})


def _definitions(lake: Path, runtime: EMRSparkRuntime) -> dg.Definitions:
    root = lake.parent
    settings = Settings(env="local", lake=str(lake), warehouse=str(root / "warehouse.duckdb"),
                        catalog=str(root / "catalog.duckdb"), spark_master="local[2]",
                        partition_start="2020-01-05", partition_end=None)
    return dg.Definitions(assets=[*DAILY_ASSETS, *WEEKLY_ASSETS], jobs=[daily_job, weekly_job],
                          resources={**resources_for(settings), "spark": runtime},
                          executor=dg.in_process_executor)


class ClusterPlayer:
    """Plays the EMR cluster for the steps moto holds (see the module docstring)."""

    def __init__(self, aws, tmp: Path, spark, mode: str, on_step=None):
        self.aws, self.tmp, self.spark, self.mode, self.on_step = aws, tmp, spark, mode, on_step
        self.seen: dict[str, list] = {}  # cluster id -> steps handled
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)

    def _loop(self):
        while not self._stop.wait(0.1):
            for cluster in list(self.aws["backend"].clusters.values()):
                for step in list(cluster.steps):
                    if step.state in ("PENDING", "RUNNING") and step not in self.seen.get(cluster.id, []):
                        self.seen.setdefault(cluster.id, []).append(step)
                        try:
                            self._play(cluster, step)
                        except BaseException as exc:  # reported by the test, never swallowed
                            self.errors.append(exc)
                            step.state = "FAILED"

    def _download(self, uri: str) -> Path:
        bucket, key = split_s3(uri)
        path = self.tmp / key.replace("/", "_")
        path.write_bytes(self.aws["s3"].get_object(Bucket=bucket, Key=key)["Body"].read())
        return path

    def _play(self, cluster, step):
        command = step.args
        step.state = "RUNNING"
        if self.on_step:
            self.on_step(cluster, step)
        if self.mode == "hold":
            return
        if self.mode == "fail":
            bucket, prefix = split_s3(cluster.log_uri)
            lines = [f"log line {i}" for i in range(100)] + ["Traceback (most recent call last):",
                                                              "RuntimeError: executor lost: disk full on core node"]
            self.aws["s3"].put_object(Bucket=bucket, Key=f"{prefix}/{cluster.id}/steps/{step.id}/stderr.gz",
                                      Body=gzip.compress("\n".join(lines).encode()))
            step.last_state_change_reason = "Step failed with exitCode 1"
            step.state = "FAILED"
            return
        # "run": the uploaded entry program, with the uploaded zip, on the local Spark.
        assert command[:2] == ["spark-submit", "--deploy-mode"]
        py_files = self._download(command[command.index("--py-files") + 1])
        entry_at = next(i for i, a in enumerate(command) if a.endswith("/emr_entry.py"))
        step_name = command[command.index("--step") + 1]
        assert f"spark_steps/{step_name}.py" in zipfile.ZipFile(py_files).namelist()
        spec = importlib.util.spec_from_file_location(f"uploaded_entry_{step.id}", self._download(command[entry_at]))
        entry = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(entry)
        code = entry.run(command[entry_at + 1:], spark=self.spark, s3_client=self.aws["s3"], message_interval=0.5)
        step.state = "COMPLETED" if code == 0 else "FAILED"


def _clusters_of(aws, run_id: str) -> list:
    return [c for c in aws["backend"].clusters.values() if c.name == f"salespipe-{run_id}"]


def _fact_rows(lake: Path) -> list[tuple]:
    return duckdb.sql(
        f"SELECT {', '.join(FACT_COLUMNS)} FROM read_parquet('{lake}/curated/weekly_sales_inventory/*/*.parquet', "
        "hive_partitioning = true) ORDER BY week_start, store_key, prod_key").fetchall()


def _assert_same_rows(actual: list[tuple], expected: list[tuple]):
    assert len(actual) == len(expected) > 0
    for a, e in zip(actual, expected):
        for col, x, y in zip(FACT_COLUMNS, a, e):
            if isinstance(y, float) and x is not None:
                assert math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9), (col, a, e)
            else:
                assert x == y, (col, a, e)


def test_each_run_is_one_cluster_with_one_step_per_spark_asset_then_terminated(aws, lake, spark, tmp_path):
    defs = _definitions(lake, _runtime())
    with dg.DagsterInstance.ephemeral() as instance:
        with ClusterPlayer(aws, tmp_path, spark, "run") as player:
            day = defs.resolve_job_def("daily_job").execute_in_process(
                partition_key=DAY, instance=instance, raise_on_error=False)
            week = defs.resolve_job_def("weekly_job").execute_in_process(
                partition_key=WEEK, instance=instance, raise_on_error=False)
        staged = instance.get_latest_materialization_event(dg.AssetKey("staged_sales")).asset_materialization
        fact = instance.get_latest_materialization_event(dg.AssetKey("weekly_sales_inventory")).asset_materialization
    assert not player.errors, player.errors
    assert day.success and week.success

    [day_cluster], [week_cluster] = _clusters_of(aws, day.run_id), _clusters_of(aws, week.run_id)
    for cluster in (day_cluster, week_cluster):
        assert cluster.state == "TERMINATED"
    # RunJobFlow as moto received it
    assert day_cluster.release_label == "emr-7.5.0" and day_cluster.log_uri == LOGS
    assert (day_cluster.service_role, day_cluster.role) == ("test-emr-service-role", "test-emr-instance-profile")
    assert {t["Key"]: t["Value"] for t in day_cluster.tags} == {"team": "analytics", RUN_TAG: day.run_id}
    groups = {g.role: (g.instance_type, g.num_instances) for g in day_cluster.instance_groups}
    assert groups == {"MASTER": ("m5.xlarge", 1), "CORE": ("r5.2xlarge", 3)}
    assert day_cluster.step_concurrency_level == 5 and day_cluster.keep_job_flow_alive_when_no_steps
    [spark_env] = day_cluster.configurations
    assert spark_env["Configurations"][0]["Properties"] == {"AWS_REGION": REGION}
    # uploads: the steps zip, the entry program, the bootstrap script, once, under one content hash
    code = aws["s3"].list_objects_v2(Bucket="salespipe-artifacts", Prefix="emr/code/")["Contents"]
    assert sorted(o["Key"].rsplit("/", 1)[1] for o in code) == ["emr_entry.py", "install_python.sh",
                                                                 "salespipe_steps.zip"]
    [bootstrap] = day_cluster.bootstrap_actions
    script = aws["s3"].get_object(Bucket="salespipe-artifacts", Key=split_s3(bootstrap.script_path)[1])["Body"].read()
    assert b"pip install" in script and b"pyarrow==" in script
    # one step per Spark asset: the five staged tables of the day (each with the run's files
    # as JSON), the fact of the week (its weeks as JSON)
    day_steps = sorted(s.args[s.args.index("--table") + 1] for s in day_cluster.steps)
    assert day_steps == sorted(TABLES)
    for s in day_cluster.steps:
        table = s.args[s.args.index("--table") + 1]
        [landed] = json.loads(s.args[s.args.index("--files") + 1])
        assert landed["business_date"] == DAY and landed["source"].startswith(f"raw/{table}_{DAY}.csv")
    [fact_step] = week_cluster.steps
    assert json.loads(fact_step.args[fact_step.args.index("--week-starts") + 1]) == [WEEK]
    # what the steps computed came back through Pipes and matches an independent reference
    raw_lines = gzip.decompress((lake / "raw" / f"sales_{DAY}.csv.gz").read_bytes()).decode().strip().splitlines()
    assert staged.metadata["rows_read"].value == len(raw_lines) - 1
    _assert_same_rows(_fact_rows(lake), [tuple(r.values()) for r in reference_fact(lake / "raw").to_pylist()])
    assert fact.metadata["dagster/row_count"].value == len(_fact_rows(lake))


def test_a_failed_step_fails_its_asset_with_reason_and_stderr_and_the_cluster_ends(aws, lake, spark, tmp_path):
    defs = _definitions(lake, _runtime())
    with dg.DagsterInstance.ephemeral() as instance, ClusterPlayer(aws, tmp_path, spark, "fail") as player:
        result = defs.resolve_job_def("weekly_job").execute_in_process(
            partition_key=WEEK, instance=instance, raise_on_error=False)
    assert not player.errors, player.errors
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    description = failure.event_specific_data.user_failure_data.description
    assert "FAILED: Step failed with exitCode 1" in description
    assert "RuntimeError: executor lost: disk full on core node" in description
    assert "log line 99" in description and "log line 10\n" not in description  # a tail, not the log
    assert failure.event_specific_data.error.cls_name == "Failure"
    [cluster] = _clusters_of(aws, result.run_id)
    assert len(cluster.steps) == 1  # not silently retried
    assert cluster.state == "TERMINATED"


def test_a_bad_file_fails_its_asset_with_the_steps_own_explanation(aws, spark, tmp_path):
    """The step program itself (run by the player) finds the file empty and says so through Pipes."""
    lake = tmp_path / "lake"
    (lake / "raw").mkdir(parents=True)
    (lake / "raw" / f"sales_{DAY}.csv").write_bytes(b"")
    defs = _definitions(lake, _runtime())
    with dg.DagsterInstance.ephemeral() as instance, ClusterPlayer(aws, tmp_path, spark, "run") as player:
        result = defs.resolve_job_def("daily_job").execute_in_process(
            partition_key=DAY, instance=instance, raise_on_error=False, asset_selection=[dg.AssetKey("staged_sales")])
    assert not player.errors, player.errors
    [failure] = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert failure.event_specific_data.user_failure_data.description == \
        f"raw/sales_{DAY}.csv: empty file: no header row"
    assert (lake / "quarantine" / f"sales_{DAY}.csv.reason.json").exists()
    [cluster] = _clusters_of(aws, result.run_id)
    # the multi-file step quarantines a bad file and reports it as that file's outcome: the
    # EMR step itself completes (its other files, in a range, are staged)
    assert [s.state for s in cluster.steps] == ["COMPLETED"] and cluster.state == "TERMINATED"


@pytest.mark.timeout(600)  # without the interruption the held step would be awaited forever
def test_a_cancelled_run_terminates_its_cluster(aws, lake, spark, tmp_path):
    defs = _definitions(lake, _runtime())
    overrides = {"run_monitoring": {"cancellation_thread_poll_interval_seconds": 1}}
    (tmp_path / "home").mkdir()
    with dg.DagsterInstance.local_temp(str(tmp_path / "home"), overrides=overrides) as instance:
        threads = []

        def cancel(cluster, step):
            # What the UI's "Terminate" does: mark the run CANCELING. Dagster's cancellation
            # thread notices and interrupts this process, as in a run worker.
            run = instance.get_run_by_id(cluster.name.removeprefix("salespipe-"))
            threads.append(start_run_cancellation_thread(instance, run.run_id))
            instance.report_run_canceling(run)

        started = time.monotonic()
        with ClusterPlayer(aws, tmp_path, spark, "hold", on_step=cancel) as player:
            result = defs.resolve_job_def("weekly_job").execute_in_process(
                partition_key=WEEK, instance=instance, raise_on_error=False)
        for thread, done in threads:
            done.set()
            thread.join(timeout=30)
    assert not player.errors, player.errors
    assert not result.success and time.monotonic() - started < 120
    interrupted = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    assert interrupted and "DagsterExecutionInterruptedError" in interrupted[0].event_specific_data.error.cls_name
    [cluster] = _clusters_of(aws, result.run_id)
    assert [s.state for s in cluster.steps] == ["RUNNING"]  # the step never finished...
    assert cluster.state == "TERMINATED"  # ...and its cluster was terminated anyway


class _Body:
    def __init__(self, data: bytes):
        self.data = data

    def stream(self, **_):
        yield self.data


def test_throttled_api_calls_are_retried_with_backoff(aws):
    """moto never throttles, so two ThrottlingException answers are put in front of it."""
    client = _runtime().client("emr")
    throttled = []

    def throttle(request, **_):
        if len(throttled) < 2:
            throttled.append(time.monotonic())
            body = b'{"__type": "ThrottlingException", "message": "Rate exceeded"}'
            return AWSResponse(request.url, 400, {"Content-Type": "application/x-amz-json-1.1"}, _Body(body))
        return None

    client.meta.events.register("before-send.emr.ListClusters", throttle)
    assert "Clusters" in client.list_clusters()  # answered by moto on the third attempt
    assert len(throttled) == 2


def test_the_emr_target_is_configured_from_the_environment():
    runtime = emr_runtime_from_env({
        "SALESPIPE_EMR_ARTIFACTS_URI": "s3://bucket/emr", "SALESPIPE_EMR_LOG_URI": "s3://bucket/emr-logs/",
        "SALESPIPE_EMR_CORE_INSTANCE_COUNT": "0", "SALESPIPE_EMR_TAGS": "team=analytics,env=prod",
        "SALESPIPE_EMR_BOOTSTRAP_ACTIONS": "s3://bucket/boot/agent.sh", "AWS_REGION": "eu-west-1"})
    assert (runtime.artifacts_uri, runtime.cluster.log_uri, runtime.region_name) == (
        "s3://bucket/emr", "s3://bucket/emr-logs/", "eu-west-1")
    assert runtime.cluster.core_instance_count == 0 and runtime.existing_cluster_id is None
    assert runtime.cluster.tags == {"team": "analytics", "env": "prod"}
    assert [(a.name, a.path) for a in runtime.cluster.bootstrap_actions] == [("agent.sh", "s3://bucket/boot/agent.sh")]
    with pytest.raises(ValueError, match="SALESPIPE_EMR_ARTIFACTS_URI and SALESPIPE_EMR_LOG_URI"):
        emr_runtime_from_env({})
