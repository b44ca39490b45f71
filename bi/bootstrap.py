"""Bring Superset's metadata to the state the repo describes; runs inside .venv-bi.

    SUPERSET_HOME=.bi_home SUPERSET_CONFIG_PATH=bi/superset_config.py \\
        .venv-bi/bin/python bi/bootstrap.py --duckdb data/lake/warehouse.duckdb

Every step is idempotent, so running it twice gives the same state:
1. schema migrations (``superset db upgrade``; a no-op at head);
2. roles and permissions (``superset init``), only when this Superset version has not
   done it yet for this metadata database (it is the slow step);
3. the admin user from SUPERSET_ADMIN_USER / SUPERSET_ADMIN_PASSWORD (default
   admin/admin, for a Superset bound to 127.0.0.1 only), created or its password reset;
4. the warehouse database, its dataset, the charts and the dashboard, imported from
   bi/dashboards/ with Superset's asset importer, which overwrites each object by uuid.

The warehouse is the DuckDB file given by --duckdb, opened read-only (the pipeline is
its only writer), unless SALESPIPE_BI_WAREHOUSE_URI names another SQLAlchemy URL
(snowflake://…, awsathena+rest://…) with SALESPIPE_BI_WAREHOUSE_SCHEMA as its schema.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
ASSETS_DIR = HERE / "dashboards"
LOCAL_DEFAULT_USER = "admin"
LOCAL_DEFAULT_PASSWORD = "admin"  # local-only default, printed; set SUPERSET_ADMIN_PASSWORD elsewhere
DASHBOARD_SLUG = "weekly-sales-inventory"


def warehouse_target(duckdb_path: str | None) -> tuple[str, str | None]:
    """(SQLAlchemy URL, schema) of the warehouse Superset reads."""
    uri = os.environ.get("SALESPIPE_BI_WAREHOUSE_URI")
    if uri:
        return uri, os.environ.get("SALESPIPE_BI_WAREHOUSE_SCHEMA") or None
    if not duckdb_path:
        raise SystemExit("bootstrap: give --duckdb PATH or set SALESPIPE_BI_WAREHOUSE_URI")
    path = Path(duckdb_path).resolve()
    if not path.exists():
        raise SystemExit(f"bootstrap: no warehouse at {path}: run 'make run' first")
    return f"duckdb:///{path}?access_mode=read_only", "main"


def connect_args() -> dict:
    """Extra DBAPI arguments from SALESPIPE_BI_WAREHOUSE_CONNECT_ARGS (JSON), e.g. a Snowflake
    host/port, which snowflake-sqlalchemy refuses in the URL. Not for secrets: they are
    stored unencrypted in the database's extra."""
    raw = os.environ.get("SALESPIPE_BI_WAREHOUSE_CONNECT_ARGS")
    return json.loads(raw) if raw else {}


def bundle(uri: str, schema: str | None) -> dict[str, str]:
    """The repo's asset definitions as the importer's {path: YAML text}, URI and schema filled in."""
    contents = {}
    for path in sorted(ASSETS_DIR.rglob("*.yaml")):
        rel = path.relative_to(ASSETS_DIR).as_posix()
        config = yaml.safe_load(path.read_text())
        if rel.startswith("databases/"):
            config["sqlalchemy_uri"] = uri
            if connect_args():
                config["extra"].setdefault("engine_params", {})["connect_args"] = connect_args()
        elif rel.startswith("datasets/"):
            config["schema"] = schema
        elif rel.startswith("charts/") and config.get("query_context"):
            config["query_context"] = json.dumps(saved_query_context(config))
        contents[rel] = yaml.safe_dump(config, sort_keys=False)
    return contents


def saved_query_context(chart: dict) -> dict:
    """The query context Superset's UI would save with the chart (what GET /chart/<id>/data runs).

    The repo keeps only its queries (tests_bi/update_query_contexts.py records them from
    the dashboard); the form data is the chart's params, and the importer points the
    datasource at the installed dataset.
    """
    return {"datasource": {"id": 0, "type": "table"}, "force": False,
            "queries": chart["query_context"]["queries"], "form_data": chart["params"],
            "result_format": "json", "result_type": "full"}


def migrate_and_init(app, home: Path) -> None:
    from flask_migrate import upgrade
    from superset import security_manager

    upgrade()
    version = app.config["VERSION_STRING"]
    stamp = home / "initialized"
    admin = security_manager.find_role("Admin")
    if admin is None or not admin.permissions or not stamp.exists() or stamp.read_text() != version:
        print("superset init: syncing roles and permissions (first run only)...", flush=True)
        app.appbuilder.add_permissions(update_perms=True)
        security_manager.sync_role_definitions()
        stamp.write_text(version)


def ensure_admin(username: str, password: str):
    from superset import db, security_manager
    from werkzeug.security import check_password_hash

    admin_role = security_manager.find_role("Admin")
    user = security_manager.find_user(username=username)
    if user is None:
        user = security_manager.add_user(username, "Superset", "Admin", f"{username}@localhost",
                                         admin_role, password=password)
        if not user:
            raise SystemExit(f"bootstrap: could not create user {username!r}")
        return user
    if not check_password_hash(user.password, password):
        security_manager.reset_password(user.id, password)
    if admin_role not in user.roles:
        user.roles.append(admin_role)
    if not user.active:
        user.active = True
    db.session.commit()
    return user


def import_assets(user, contents: dict[str, str]) -> None:
    from superset.commands.importers.v1.assets import ImportAssetsCommand
    from superset.utils.core import override_user

    with override_user(user):
        ImportAssetsCommand(contents).run()


def summary() -> dict:
    from superset import db
    from superset.models.dashboard import Dashboard

    dash = db.session.query(Dashboard).filter_by(slug=DASHBOARD_SLUG).one()
    return {"dashboard_id": dash.id, "charts": sorted(s.slice_name for s in dash.slices)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duckdb", help="the warehouse DuckDB file (ignored when SALESPIPE_BI_WAREHOUSE_URI is set)")
    args = parser.parse_args(argv)

    home = Path(os.environ.setdefault("SUPERSET_HOME", str(HERE.parent / ".bi_home"))).resolve()
    os.environ.setdefault("SUPERSET_CONFIG_PATH", str(HERE / "superset_config.py"))
    uri, schema = warehouse_target(args.duckdb)
    username = os.environ.get("SUPERSET_ADMIN_USER") or LOCAL_DEFAULT_USER
    password = os.environ.get("SUPERSET_ADMIN_PASSWORD") or LOCAL_DEFAULT_PASSWORD

    from superset.app import create_app

    app = create_app()
    with app.app_context():
        with contextlib.redirect_stdout(sys.stderr):  # migrations chatter on stdout; keep it in the log
            migrate_and_init(app, home)
        user = ensure_admin(username, password)
        import_assets(user, bundle(uri, schema))
        result = summary()

    shown = "(from SUPERSET_ADMIN_PASSWORD)" if os.environ.get("SUPERSET_ADMIN_PASSWORD") else \
        f"'{LOCAL_DEFAULT_PASSWORD}' (local-only default; set SUPERSET_ADMIN_PASSWORD to change it)"
    print(f"superset metadata: {home}")
    print(f"warehouse: {uri.split('://')[0]}://… schema {schema or '(default)'}")
    print(f"admin user: {username}, password {shown}")
    print(f"dashboard {result['dashboard_id']} '{DASHBOARD_SLUG}' with {len(result['charts'])} charts: "
          + ", ".join(result["charts"]))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
