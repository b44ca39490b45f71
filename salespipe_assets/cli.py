"""The ``salespipe`` command.

Errors are one line and a non-zero exit; ``--debug`` shows the traceback. Modules that
build the asset graph are imported only after the environment is set from the options,
because the partitions and resources are read from it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from salespipe_assets.settings import DEFAULT_PARTITION_START, PROJECT_ROOT


def _dagster_home() -> Path:
    from salespipe_assets.instance import instance_yaml, use_profile

    profile = os.environ.get("SALESPIPE_INSTANCE", "local")  # local: SQLite; postgres: DAGSTER_PG_*
    try:
        project = instance_yaml(profile)
        use_profile(profile)
    except ValueError as exc:
        raise click.ClickException(str(exc))
    home = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    used = home / "dagster.yaml"
    if not used.exists():
        used.write_text(project)
    elif used.read_text() != project:
        # kept (it may hold your edits), but say so: the project's may have news (queues, sensors)
        click.echo(f"note: {used} differs from the project's {PROJECT_ROOT / 'dagster.yaml'} "
                   f"(profile {profile}); delete it to use the project's", err=True)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def _configure(lake: str, warehouse: str | None, spark_master: str | None, create: bool = False) -> None:
    """Point the environment at this lake and make the partitions cover its days."""
    from salespipe_assets.resources.lake import LocalLake

    if not lake.startswith("s3://"):
        if create and not Path(lake).exists():  # a new, empty lake for the sensor to watch
            (Path(lake) / "raw").mkdir(parents=True)
        if not Path(lake).is_dir():
            raise click.BadParameter(f"{lake} is not a lake directory", param_hint="--lake")
        lake = str(Path(lake).resolve())
    os.environ["SALESPIPE_LAKE"] = lake
    if warehouse in ("duckdb", "snowflake"):
        os.environ["SALESPIPE_WAREHOUSE_KIND"] = warehouse
    elif warehouse:
        os.environ["SALESPIPE_WAREHOUSE"] = str(Path(warehouse).resolve())
    if spark_master:
        os.environ["SALESPIPE_SPARK_MASTER"] = spark_master
    days = sorted(LocalLake(root=lake).scan_landing().days) if not lake.startswith("s3://") else []
    if days:
        first = dt.date.fromisoformat(days[0])
        sunday = first - dt.timedelta(days=first.isoweekday() % 7)
        start = os.environ.get("SALESPIPE_PARTITION_START", DEFAULT_PARTITION_START)
        if sunday.isoformat() < start:
            os.environ["SALESPIPE_PARTITION_START"] = sunday.isoformat()
        last = dt.date.fromisoformat(days[-1])
        if last >= dt.date.today() and not os.environ.get("SALESPIPE_PARTITION_END"):
            os.environ["SALESPIPE_PARTITION_END"] = (last + dt.timedelta(days=14 - last.isoweekday() % 7)).isoformat()
    _dagster_home()


@contextmanager
def _holding_lake(lake: str, command: str, wait: bool) -> Iterator[None]:
    """One run at a time per lake (salespipe_assets/run_lock.py); a busy lake is one error line."""
    from salespipe_assets import runner
    from salespipe_assets.run_lock import LakeBusy, holding_lake

    if not click.get_current_context().find_root().obj.get("debug"):
        runner.CONSOLE_LOG_LEVEL = "CRITICAL"  # failed steps are the ERROR lines, not stack traces
    try:
        with holding_lake(lake, os.environ["DAGSTER_HOME"], command, wait=wait,
                          echo=lambda line: click.echo(line, err=True)):
            yield
    except LakeBusy as exc:
        raise click.ClickException(str(exc)) from None


def _echo_errors(errors: list[str]) -> None:
    """One ``ERROR`` line each, control characters escaped (a file name may end in a newline)."""
    from salespipe_assets.resources.lake import printable

    for error in errors:
        click.echo(f"ERROR {printable(error)}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """salespipe: weekly sales & inventory analytics on Dagster and Spark."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.option("--lake", required=True, type=click.Path(file_okay=False), help="Lake directory to write raw/ into.")
@click.option("--start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First business day, YYYY-MM-DD.")
@click.option("--days", required=True, type=click.IntRange(min=1), help="Number of business days.")
@click.option("--scale", default=0.01, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="1 is about 1M sales rows per day.")
@click.option("--seed", default=0, show_default=True, type=int, help="Random seed; same arguments, same bytes.")
def generate(lake: str, start: dt.datetime, days: int, scale: float, seed: int) -> None:
    """Write synthetic daily landing files (SPEC §1) into LAKE/raw/."""
    from salespipe_assets.datagen import generate as run_generate

    report = run_generate(lake, start.date(), days, scale=scale, seed=seed, progress=True)
    rows = ", ".join(f"{table} {n:,}" for table, n in report["rows"].items())
    click.echo(f"wrote {len(report['files'])} files into {Path(lake) / 'raw'} in {report['seconds']:.1f} s ({rows} rows)")


@cli.command()
@click.option("--lake", required=True, help="Lake directory (or s3://bucket/prefix).")
@click.option("--warehouse", default=None,
              help="'snowflake' (SNOWFLAKE_* variables), 'duckdb', or a DuckDB file [default: LAKE/warehouse.duckdb].")
@click.option("--spark-master", default=None, help="Spark: local[N], a cluster URL (spark://host:7077), or 'emr' (one transient EMR cluster "
                   "per run; SALESPIPE_EMR_* settings, docs/emr.md) [default: local[2]].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--wait", is_flag=True, help="If another run holds the lake, wait for it instead of exiting at once.")
def run(lake: str, warehouse: str | None, spark_master: str | None, quiet: bool, wait: bool) -> None:
    """Materialize every complete new day in the lake, and its week, up to the warehouse."""
    _configure(lake, warehouse, spark_master)
    _use_running_spark_server()
    import dagster as dg

    from salespipe_assets.definitions import build_definitions
    from salespipe_assets.run_lock import open_instance
    from salespipe_assets.runner import format_summary, run_lake
    from salespipe_assets.settings import Settings

    settings = Settings.from_env()
    defs = build_definitions(settings)
    with _holding_lake(settings.lake, "salespipe run", wait), open_instance() as instance:
        summary = run_lake(defs, instance, defs.resources["lake"], progress=not quiet)
    click.echo(format_summary(summary, settings.lake))
    _echo_errors(summary.all_errors())
    if not summary.ok:
        sys.exit(1)


@cli.command()
@click.option("--lake", required=True, help="Lake directory (or s3://bucket/prefix).")
@click.option("--start", required=True, type=click.DateTime(["%Y-%m-%d"]), help="First business day, YYYY-MM-DD.")
@click.option("--end", required=True, type=click.DateTime(["%Y-%m-%d"]), help="Last business day, YYYY-MM-DD.")
@click.option("--warehouse", default=None, help="'snowflake', 'duckdb', or a DuckDB file.")
@click.option("--spark-master", default=None, help="Spark: local[N], spark://host:7077 or 'emr'.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@click.option("--wait", is_flag=True, help="If another run holds the lake, wait for it instead of exiting at once.")
def backfill(lake: str, start: dt.datetime, end: dt.datetime, warehouse: str | None,
             spark_master: str | None, quiet: bool, wait: bool) -> None:
    """Re-materialize every landed day in [START, END] whatever ran before, then their weeks.

    One run per range of contiguous days (at most SALESPIPE_DAYS_PER_RUN, 31 by default),
    then one per range of their weeks (SALESPIPE_WEEKS_PER_RUN, 53)."""
    if end < start:
        raise click.BadParameter("must not be before --start", param_hint="--end")
    _configure(lake, warehouse, spark_master)
    _use_running_spark_server()
    import dagster as dg

    from salespipe_assets.backfill import backfill_lake, format_backfill
    from salespipe_assets.definitions import build_definitions
    from salespipe_assets.run_lock import open_instance
    from salespipe_assets.settings import Settings

    settings = Settings.from_env()
    defs = build_definitions(settings)
    with _holding_lake(settings.lake, "salespipe backfill", wait), open_instance() as instance:
        summary = backfill_lake(defs, instance, defs.resources["lake"], start.date(), end.date(), progress=not quiet)
    click.echo(format_backfill(summary, settings.lake, start.date(), end.date()))
    _echo_errors(summary.all_errors())
    if not summary.ok:
        sys.exit(1)


@cli.command()
@click.option("--lake", required=True, help="Lake directory (or s3://bucket/prefix) the sensor watches.")
@click.option("--warehouse", default=None,
              help="'snowflake' (SNOWFLAKE_* variables), 'duckdb', or a DuckDB file [default: LAKE/warehouse.duckdb].")
@click.option("--port", default=3000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--spark-master", default=None, help="Spark: local[N], a cluster URL (spark://host:7077), or 'emr' (one transient EMR cluster "
                   "per run; SALESPIPE_EMR_* settings, docs/emr.md) [default: local[2]].")
@click.option("--sensor-interval", default=None, type=click.IntRange(min=1),
              help="Least seconds between two listings of the raw zone [default: 1: every daemon loop, about 5 s].")
@click.option("--code-server", "code_server_port", default=None, type=click.IntRange(1, 65535), is_flag=False,
              flag_value=4000, help="Serve the code from its own `dagster code-server` on this port [flag alone: 4000]: "
                                    "reloading the code then restarts neither the webserver nor the daemon.")
def dev(lake: str, warehouse: str | None, port: int, spark_master: str | None, sensor_interval: int | None,
        code_server_port: int | None) -> None:
    """Start the Dagster UI and daemon on 127.0.0.1 (sensors on) with a project-local DAGSTER_HOME."""
    _configure(lake, warehouse, spark_master, create=True)
    if sensor_interval:
        os.environ["SALESPIPE_SENSOR_INTERVAL"] = str(sensor_interval)
    _start_dev_spark_server()
    dagster = shutil.which("dagster", path=str(Path(sys.executable).parent)) or "dagster"
    click.echo(f"Dagster UI: http://127.0.0.1:{port}  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    workspace = PROJECT_ROOT / "workspace.yaml"
    if code_server_port:
        from salespipe_assets.code_server import serve_with_code_server

        sys.exit(serve_with_code_server(dagster, port, code_server_port, Path(os.environ["DAGSTER_HOME"])))
    # exec: dagster dev then owns the terminal and shuts its webserver and daemon down on Ctrl-C
    argv = [dagster, "dev", "-w", str(workspace), "-h", "127.0.0.1", "-p", str(port)]
    os.execv(dagster, argv)  # nosec B606  # the venv's dagster with an argument list, no shell


def _start_dev_spark_server() -> None:
    """``salespipe dev``'s local Spark Connect server, kept up by a small supervisor next to the
    webserver and daemon; the runs find it in SALESPIPE_SPARK_REMOTE. None when that is
    already set or the Spark master is not local; one `salespipe spark up` started is used."""
    from salespipe_assets.settings import Settings
    from salespipe_assets.spark_server import REMOTE_ENV, given_remote, running_server, start_supervised

    master = Settings.from_env().spark_master
    if given_remote() or not master.startswith("local"):
        return
    state = running_server(os.environ["DAGSTER_HOME"])  # `salespipe spark up`'s: it stays yours
    if state is None:
        state = start_supervised(os.environ["DAGSTER_HOME"], master=master)
    os.environ[REMOTE_ENV] = state.url
    click.echo(f"Spark Connect server: {state.url}  (log {state.log})")


def _use_running_spark_server() -> None:
    """``salespipe run``/``backfill``: a local Spark Connect server that is up (``salespipe dev``,
    ``salespipe spark up``) serves the runs; without one, Spark runs in this process."""
    from salespipe_assets.settings import Settings
    from salespipe_assets.spark_server import REMOTE_ENV, given_remote, running_server

    if given_remote() or not Settings.from_env().spark_master.startswith("local"):
        return
    server = running_server(os.environ["DAGSTER_HOME"])
    if server is not None:
        os.environ[REMOTE_ENV] = server.url


@cli.command()
@click.argument("action", type=click.Choice(["up", "down", "status"]))
@click.option("--master", default="local[2]", show_default=True, help="The server's Spark master.")
@click.option("--driver-memory", default="4g", show_default=True)
def spark(action: str, master: str, driver_memory: str) -> None:
    """A local Spark Connect server on 127.0.0.1 that `salespipe run` uses while it is up
    (`salespipe dev` starts its own); state and log under DAGSTER_HOME/spark-connect."""
    from salespipe_assets import spark_server

    home = _dagster_home()
    server = spark_server.running_server(home)
    if action == "status":
        click.echo(f"Spark Connect server: up at {server.url} (pid {server.pid}, {server.master}, log {server.log})"
                   if server else "Spark Connect server: down")
        sys.exit(0 if server else 3)
    if action == "down":
        stopped = spark_server.stop(home)
        click.echo(f"Spark Connect server stopped (pid {stopped.pid})" if stopped else "Spark Connect server: was not up")
        return
    if server is not None:
        click.echo(f"Spark Connect server: already up at {server.url} (pid {server.pid})")
        return
    _, state = spark_server.start(home, master=master, driver_memory=driver_memory)
    click.echo(f"Spark Connect server: up at {state.url} (pid {state.pid}, log {state.log})")


@cli.command()
@click.option("--scale", default=1.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Data scale of the Spark-vs-DuckDB week (1 is about 1M sales rows per day).")
@click.option("--history", default="1,4,12,52", show_default=True,
              help="Weeks of history after which the cost of one more day is measured.")
@click.option("--history-scale", default=None, type=click.FloatRange(min=0, min_open=True),
              help="Data scale of the history days [default: min(scale, 0.1)].")
@click.option("--only", default="spark_vs_duckdb,history,latency,memory,staging_warm", show_default=True,
              help="Comma-separated measurements to run.")
@click.option("--out", default=None, type=click.Path(file_okay=False),
              help="Where results.json and results.png go [default: benchmarks/ of the project].")
@click.option("--work", default=None, type=click.Path(file_okay=False),
              help="Scratch directory for generated data and runs [default: data/bench of the project].")
@click.option("--repeat", default=5, show_default=True, type=click.IntRange(min=1),
              help="Timed repetitions of each part of the history measurement (the fastest is kept).")
@click.option("--latency-runs", default=3, show_default=True, type=click.IntRange(min=1),
              help="Days landed one after another for the latency measurement.")
@click.option("--sensor-interval", default=None, type=click.IntRange(min=1),
              help="Sensor interval of the server in the latency measurement [default: the product's, 1].")
@click.option("--merge", is_flag=True,
              help="Keep the measurements of OUT/results.json that --only does not re-run (each says when it was measured).")
def bench(scale: float, history: str, history_scale: float | None, only: str, out: str | None, work: str | None,
          repeat: int, latency_runs: int, sensor_interval: int | None, merge: bool) -> None:
    """Measure the pipeline against its targets; write OUT/results.json and a plot (docs/benchmarks.md).

    Needs the bench extra: pip install -e '.[bench]'."""
    try:  # the bench is a package of its own; pillow checked now, not after an hour of measuring
        import PIL  # noqa: F401  # the plot

        from salespipe_bench import MEASUREMENTS, PLOT, RESULTS, BenchOptions, run_bench
    except ImportError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing not in ("PIL", "salespipe_bench"):
            raise  # something else is broken: not a missing extra
        raise click.ClickException(
            f"salespipe bench needs the 'bench' extra ({'pillow' if missing == 'PIL' else missing} is not installed): "
            "install salespipe[bench], e.g. pip install -e '.[bench]'") from None

    try:
        weeks = sorted({int(w) for w in history.split(",") if w.strip()})
    except ValueError:
        raise click.BadParameter(f"{history!r} is not a comma-separated list of week counts", param_hint="--history")
    if not weeks or weeks[0] < 1:
        raise click.BadParameter("week counts must be >= 1", param_hint="--history")
    chosen = [m.strip() for m in only.split(",") if m.strip()]
    unknown = [m for m in chosen if m not in MEASUREMENTS]
    if unknown or not chosen:
        raise click.BadParameter(f"choose from {', '.join(MEASUREMENTS)}", param_hint="--only")
    options = BenchOptions(scale=scale, history=weeks, history_scale=history_scale, only=chosen,
                           repeat=repeat, latency_runs=latency_runs, sensor_interval=sensor_interval, merge=merge)
    if out:
        options.out = Path(out)
    if work:
        options.work = Path(work)
    results = run_bench(options, echo=click.echo)
    click.echo(f"wrote {Path(options.out).resolve() / RESULTS} and {Path(options.out).resolve() / PLOT}")
    failed = [name for name, m in results["measurements"].items() if "error" in m]
    for name in failed:
        click.echo(f"ERROR {name}: {results['measurements'][name]['error']}", err=True)
    if failed:
        sys.exit(1)


@contextmanager
def _catalog_snapshot(catalog: str) -> Iterator[str]:
    """A private copy of the catalog: a query never holds the file a run writes (DuckDB
    allows one writing process or many reading ones, not both)."""
    import tempfile

    import duckdb
    from filelock import Timeout

    from salespipe_assets.resources.query import snapshot

    wait = float(os.environ.get("SALESPIPE_QUERY_WAIT_SECONDS", "60"))  # a run holds it for seconds at most
    with tempfile.TemporaryDirectory(prefix="salespipe-query-") as tmp:
        try:
            copy = str(snapshot(catalog, Path(tmp), timeout=wait))
        except Timeout:
            raise click.ClickException(f"the catalog {catalog} was busy for {wait:g} s "
                                       "(a run is writing it): try again in a moment") from None
        if Path(f"{copy}.wal").exists():  # a writer died mid-write: replay its log into the copy
            duckdb.connect(copy).close()
        yield copy


@cli.command()
@click.option("--lake", required=True, help="Lake directory whose catalog to query.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.argument("sql")
def query(lake: str, fmt: str, sql: str) -> None:
    """Run SQL against the catalog tables (DuckDB locally), e.g. 'SELECT count(*) FROM weekly_sales_inventory'."""
    _configure(lake, None, None)
    import duckdb

    from salespipe_assets.settings import Settings

    catalog = Settings.from_env().catalog
    if not Path(catalog).exists():
        raise click.ClickException(f"no catalog at {catalog}: run 'salespipe run --lake {lake}' first")
    with _catalog_snapshot(catalog) as copy, duckdb.connect(copy, read_only=True) as con:
        rel = con.sql(sql)
        if rel is None:
            return
        if fmt == "table":
            rel.show(max_rows=100, max_width=200)
        elif fmt == "csv":
            df = rel.df()
            click.echo(df.to_csv(index=False), nl=False)
        else:
            click.echo(rel.df().to_json(orient="records", date_format="iso"))


@cli.command()
@click.argument("action", type=click.Choice(["up", "down", "status"]))
@click.option("--lake", default=None, help="Lake whose warehouse.duckdb Superset reads [default: data/lake].")
def bi(action: str, lake: str | None) -> None:
    """Superset with the versioned dashboards on 127.0.0.1:8088 (own venv in .venv-bi; see docs/bi.md)."""
    from salespipe_assets import bi as superset

    if lake:
        os.environ["SALESPIPE_WAREHOUSE"] = str(Path(lake).resolve() / "warehouse.duckdb")
    code = superset.main([action])
    if code:
        sys.exit(code)


@cli.command("lambda-package")
@click.argument("out", type=click.Path(dir_okay=False, writable=True))
def lambda_package(out: str) -> None:
    """Build the AWS Lambda deployment zip (handler: lambda_handler.handler); see docs/lambda.md."""
    from salespipe_assets.triggers.package import HANDLER, build_lambda_zip

    path = build_lambda_zip(out)
    click.echo(f"wrote {path} (handler {HANDLER}; set SALESPIPE_LAKE=s3://bucket/prefix and DAGSTER_GRAPHQL_URL)")


def main() -> None:
    debug = "--debug" in sys.argv
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.UsageError as exc:  # one line, not click's usage block
        click.echo(f"error: {exc.format_message()} (see --help)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        click.echo(f"error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except SystemExit:
        raise
    except Exception as exc:  # one clear line unless --debug
        if debug:
            raise
        first_line = (str(exc).strip().splitlines() or [""])[0]
        click.echo(f"error: {exc.__class__.__name__}: {first_line} (--debug for details)", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
