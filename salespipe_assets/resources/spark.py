"""Runs the ``spark_steps`` programs for the assets, on one of three targets.

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

import dagster as dg

from spark_steps.lakefs import LakeWriteError
from spark_steps.runtime import StepFailed, spark_session

_shipped: set[str] = set()  # SparkContext application ids the steps package was added to
_ship_lock = threading.Lock()


def step_failure(message: str, result: dict, extra: dict | None = None) -> dg.Failure:
    """The failure of an asset whose step explained what was wrong with its input."""
    error = {**result.get("error", {}), **(extra or {})}
    return dg.Failure(
        description=message,
        metadata={k: dg.MetadataValue.text(str(v)) for k, v in error.items() if v is not None},
        allow_retries=False,
    )


class SparkRuntime(dg.ConfigurableResource):
    master: str = "local[2]"
    conf: dict[str, str] = {
        "spark.driver.memory": "4g",
        "spark.sql.shuffle.partitions": "4",
    }

    @property
    def target(self) -> str:
        return "local" if self.master.startswith("local") else "cluster"

    def session(self):
        if self.target == "local":
            return spark_session(app_name="salespipe", master=self.master, conf=self.conf)
        # Executors start this interpreter, so it must exist on the workers at this path.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf = {"spark.pyspark.python": os.environ["PYSPARK_PYTHON"], **self.conf}
        session = spark_session(app_name="salespipe", master=self.master, conf=conf)
        _ship_steps_package(session)
        return session

    def run_step(self, context: dg.AssetExecutionContext, step: str, **args) -> dict:
        module = importlib.import_module(f"spark_steps.{step}")
        try:
            return module.run(self.session(), run_id=context.run.run_id, **args)
        except StepFailed as exc:
            raise step_failure(str(exc), exc.result) from None
        except LakeWriteError as exc:
            raise dg.Failure(description=str(exc), metadata={"path": dg.MetadataValue.path(exc.uri),
                                                             "reason": exc.reason}) from exc


def _ship_steps_package(session) -> None:
    """Executors of a remote cluster import ``spark_steps`` from this zip."""
    from salespipe_assets.resources.spark_package import build_package

    context = session.sparkContext
    with _ship_lock:
        if context.applicationId in _shipped:
            return
        context.addPyFile(str(build_package()))
        _shipped.add(context.applicationId)
