"""Runs the ``spark_steps`` programs for the assets.

``local`` and ``spark://`` masters run the step in this process against one
SparkSession shared by every Spark asset of the run (the job uses the in-process
executor, so a run is one JVM). A step that reports a bad input fails its asset with
the step's own one-line explanation.
"""

from __future__ import annotations

import importlib

import dagster as dg

from spark_steps.runtime import StepFailed, spark_session


class SparkRuntime(dg.ConfigurableResource):
    master: str = "local[2]"
    conf: dict[str, str] = {
        "spark.driver.memory": "4g",
        "spark.sql.shuffle.partitions": "4",
    }

    def session(self):
        return spark_session(app_name="salespipe", master=self.master, conf=self.conf)

    def run_step(self, context: dg.AssetExecutionContext, step: str, **args) -> dict:
        module = importlib.import_module(f"spark_steps.{step}")
        try:
            return module.run(self.session(), run_id=context.run.run_id, **args)
        except StepFailed as exc:
            error = exc.result.get("error", {})
            raise dg.Failure(
                description=str(exc),
                metadata={k: dg.MetadataValue.text(str(v)) for k, v in error.items() if v is not None},
                allow_retries=False,
            ) from None
