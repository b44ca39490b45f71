"""Retries for the assets that talk to services which fail transiently.

The catalog (DuckDB file / Glue), the query engine (DuckDB / Athena), the warehouse
(DuckDB file / Snowflake) and the Snowflake source export are retried with exponential
backoff: a DuckDB file held by a process that does not take our lock (Superset, a DuckDB
shell; our own runs and `salespipe query` wait on ``<file>.lock`` instead, see
resources/query.py), API throttling, a dropped connection. Waits are about 1, 3 and 7 seconds
(each ±1 s of jitter), then the step fails with the last error.

Spark steps are never retried: a bad landed file fails the same way every time, and the
failure (quarantine, one clear message) is the answer. A failure an asset knows to be
permanent is raised as ``dg.Failure(..., allow_retries=False)`` and skips these retries.
The dashboard refresh reports Superset trouble without failing, so it needs none.
"""

import dagster as dg

SERVICE_RETRY_POLICY = dg.RetryPolicy(
    max_retries=3,
    delay=1.0,
    backoff=dg.Backoff.EXPONENTIAL,
    jitter=dg.Jitter.PLUS_MINUS,
)
