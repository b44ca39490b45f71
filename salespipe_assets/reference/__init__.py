"""Independent reference implementations used as test oracles and benchmark baselines."""

from salespipe_assets.reference.duckdb_fact import reference_counts, reference_fact

__all__ = ["reference_counts", "reference_fact"]
