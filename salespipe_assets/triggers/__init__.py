"""Ways to start a business day's run from outside Dagster (the AWS Lambda handler)."""
