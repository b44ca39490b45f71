"""Fixtures for the BI tests: a real Superset (gunicorn, from .venv-bi) on a free port of
127.0.0.1, with its own metadata in a temporary SUPERSET_HOME, bootstrapped by
bi/bootstrap.py against a warehouse DuckDB file; stopped by its PID at the end.

The warehouse is the tiny one of tiny_warehouse.py, or a copy of the file named by
SALESPIPE_BI_TEST_WAREHOUSE (``make test-bi`` passes data/lake/warehouse.duckdb when
``make run`` has built it). No service is faked here.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import duckdb
import pytest

from salespipe_assets import bi
from tests.servers import free_port
from tests_bi import tiny_warehouse

ADMIN_USER = "bi-test-admin"
ADMIN_PASSWORD = "bi-test-password"  # a throwaway instance in a temporary directory


@pytest.fixture(scope="session")
def warehouse(tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    source = os.environ.get("SALESPIPE_BI_TEST_WAREHOUSE")
    if source:
        shutil.copy(source, target)
        if Path(source + ".wal").exists():
            shutil.copy(source + ".wal", str(target) + ".wal")
        return target
    return tiny_warehouse.write(target)


@pytest.fixture(scope="session")
def is_tiny_warehouse() -> bool:
    return not os.environ.get("SALESPIPE_BI_TEST_WAREHOUSE")


@pytest.fixture(scope="session")
def warehouse_sql(warehouse):
    """Run SQL on the warehouse file read-only (Superset holds it read-only too)."""
    def run(sql: str) -> list[tuple]:
        with duckdb.connect(str(warehouse), read_only=True) as con:
            return con.execute(sql).fetchall()
    return run


@pytest.fixture(scope="session")
def bi_config(tmp_path_factory) -> bi.BIConfig:
    return bi.BIConfig(home=tmp_path_factory.mktemp("bi_home"), port=free_port())


@pytest.fixture(scope="session")
def superset(bi_config, warehouse, monkeypatch_session):
    """A running, bootstrapped Superset; yields its BIConfig."""
    monkeypatch_session.setenv("SUPERSET_ADMIN_USER", ADMIN_USER)
    monkeypatch_session.setenv("SUPERSET_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch_session.delenv("SALESPIPE_BI_WAREHOUSE_URI", raising=False)
    bi.ensure_venv(bi_config)
    bi.bootstrap(bi_config, str(warehouse))
    try:
        bi.start(bi_config)
        yield bi_config
    finally:
        bi.stop(bi_config)


@pytest.fixture(scope="session")
def monkeypatch_session():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


@pytest.fixture(scope="session")
def api(superset) -> bi.SupersetClient:
    return bi.SupersetClient(superset.url, ADMIN_USER, ADMIN_PASSWORD)
