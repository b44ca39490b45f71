"""Runs the ``spark_steps`` programs for the assets, on one of four targets.

``SparkRuntime`` is dagster-pyspark's ``LazyPySparkResource`` (no session until a step
asks for one) with the project's way of making the session:

- ``connect`` (``remote="sc://127.0.0.1:PORT"``): a Spark Connect server that is already
  warm (``salespipe dev`` / ``salespipe spark up`` start one, ``spark_server.py``). Each run
  gets a Connect session of its own, closed when the run ends, so temporary views, cached
  data and SQL configuration never leak between runs. A server that stops answering fails
  the step with one line saying Spark is gone.
- ``local`` (``master="local[N]"``): the step runs in this process against one
  SparkSession shared by every Spark asset of the run (the job uses the in-process
  executor, so a run is one JVM).
- ``cluster`` (``master="spark://host:7077"``, or any other Spark master URL): the same
  in-process driver, with executors on the cluster. The steps package is shipped to the
  executors (``addPyFile``) and their Python is this interpreter unless ``conf`` says
  otherwise (``spark.pyspark.python``), so workers need the same Python environment path.
- ``emr``: ``EMRSparkRuntime`` in ``emr.py``, a subclass: one transient EMR cluster per run.

Whatever the target, ``run_step(context, step, **args) -> dict`` is what the assets call,
and a step that reports a bad input fails its asset with the step's own explanation; a
lake that cannot be written fails it with one line naming the partition and the reason.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from typing import Any
from urllib.parse import urlparse

import dagster as dg
# Spark Connect's client sets up its logger when first imported, via PySparkLogger.getLogger,
# which swaps logging's process-wide logger class for a moment: a Dagster run starting in
# another thread then builds its console logger from PySparkLogger and fails (TypeError:
# unexpected keyword argument 'level'; seen with two in-process runs at once). Imported
# here, before any run starts, it happens once.
import pyspark.sql.connect.logging  # noqa: F401
from dagster_pyspark import LazyPySparkResource

from spark_steps.lakefs import LakeWriteError
from spark_steps.runtime import StepFailed, is_connect, spark_session, use_session_kind

_shipped: set[str] = set()  # sessions (application or Connect session ids) the steps package was added to
_ship_lock = threading.Lock()
_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def step_failure(message: str, result: dict, extra: dict | None = None) -> dg.Failure:
    """The failure of an asset whose step explained what was wrong with its input."""
    error = {**result.get("error", {}), **(extra or {})}
    return dg.Failure(
        description=message,
        metadata={k: dg.MetadataValue.text(str(v)) for k, v in error.items() if v is not None},
        allow_retries=False,
    )


class SparkRuntime(LazyPySparkResource):
    master: str = "local[2]"
    remote: str | None = None  # sc://host:port: a Spark Connect server instead of a JVM here
    conf: dict[str, str] = {
        "spark.driver.memory": "4g",
        "spark.sql.shuffle.partitions": "4",
    }
    spark_config: dict[str, Any] = {}  # LazyPySparkResource's; the session is made from the fields above

    @property
    def target(self) -> str:
        if self.remote:
            return "connect"
        return "local" if self.master.startswith("local") else "cluster"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._spark_session = None  # copies of a resource may share their private objects

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        # The run's Connect session ends with the run (its views and cache are freed on the
        # server); an in-process session stays for the next run of this process.
        if self.target == "connect" and self._spark_session is not None:
            try:
                self._spark_session.stop()
            except Exception as exc:  # the server may be gone; nothing is left to free then
                context.log.debug(f"closing the Spark Connect session: {exc}")
            self._spark_session = None

    def _init_session(self) -> None:
        if self._spark_session is None:
            self._spark_session = self._new_session()

    def _new_session(self, input_bytes: int | None = None):
        if self.target == "connect":
            session = spark_session(app_name="salespipe", remote=self.remote, conf=self.conf)
            if urlparse(self.remote).hostname not in _LOOPBACK:
                _ship_steps_package(session)  # a server elsewhere cannot import ours
            return session
        if self.target == "local":
            return spark_session(app_name="salespipe", master=self.master, conf=self.conf, input_bytes=input_bytes)
        # Executors start this interpreter, so it must exist on the workers at this path.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf = {"spark.pyspark.python": os.environ["PYSPARK_PYTHON"], **self.conf}
        session = spark_session(app_name="salespipe", master=self.master, conf=conf)
        _ship_steps_package(session)
        return session

    def session(self, input_bytes: int | None = None):
        """The run's session. ``input_bytes``: the landed bytes the step reads, which decide
        a local JVM's JIT settings when this call starts it (``spark_steps.jvm_options``)."""
        if self.target != "connect":  # getOrCreate: the process's one session, made again if stopped
            self._spark_session = self._new_session(input_bytes)
        session = self.spark_session
        use_session_kind(session)
        return session

    def run_step(self, context: dg.AssetExecutionContext, step: str, input_bytes: int | None = None, **args) -> dict:
        module = importlib.import_module(f"spark_steps.{step}")
        try:
            return module.run(self.session(input_bytes), run_id=context.run.run_id, **args)
        except StepFailed as exc:
            raise step_failure(str(exc), exc.result) from None
        except LakeWriteError as exc:
            raise dg.Failure(description=str(exc), metadata={"path": dg.MetadataValue.path(exc.uri),
                                                             "reason": exc.reason}) from exc
        except Exception as exc:
            if self.target == "connect" and server_gone(exc):
                raise dg.Failure(description=f"Spark is gone: the Spark Connect server at {self.remote} stopped "
                                             f"answering during {step} ({first_line(exc)})",
                                 metadata={"server": self.remote}, allow_retries=False) from None
            raise


def server_gone(exc: BaseException) -> bool:
    """The error says the Connect server cannot be reached or has lost this session."""
    import grpc
    from pyspark.errors import PySparkException

    if isinstance(exc, grpc.RpcError):
        return exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
    text = str(exc)
    # unreachable, or reached again after a restart that lost the session or the operation
    # (a restarted server answers a running fetch with RESPONSE_ALREADY_RECEIVED / SESSION_NOT_FOUND)
    markers = ("UNAVAILABLE", "Connection refused", "failed to connect to all addresses", "SESSION_NOT_FOUND",
               "SESSION_CHANGED", "OPERATION_NOT_FOUND", "Socket closed", "RetriesExceeded")
    return (isinstance(exc, PySparkException) or type(exc).__name__ == "RetriesExceeded") and \
        any(m in text or m in type(exc).__name__ for m in markers)


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _ship_steps_package(session) -> None:
    """Executors of a remote cluster (or a remote Connect server) import ``spark_steps`` from this zip."""
    from salespipe_assets.resources.spark_package import build_package

    if is_connect(session):
        key = session.session_id
        add = lambda path: session.addArtifacts(path, pyfile=True)  # noqa: E731
    else:
        key = session.sparkContext.applicationId
        add = session.sparkContext.addPyFile
    with _ship_lock:
        if key in _shipped:
            return
        add(str(build_package()))
        _shipped.add(key)
