"""`trainu db`: the Postgres server (embedded unless TRAINU_DATABASE_URL) and its migrations."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from trainu_dagster.cli.common import (
    command_group,
    fail,
    get_settings,
    prepare_database,
    running_database,
)

app = command_group("The Postgres server: start, stop, inspect, migrate.")


@app.command("start")
def db_start() -> None:
    """Start the embedded Postgres (if no TRAINU_DATABASE_URL), create databases, migrate."""
    settings = get_settings()
    database = prepare_database(settings)
    where = "external server" if settings.database_url else f"embedded, data in {settings.pgdata}"
    typer.echo(f"database ready ({where}): {database.admin_url.render_as_string()}")


@app.command("stop")
def db_stop() -> None:
    """Stop the embedded Postgres (committed data is kept)."""
    from trainu_dagster.db import embedded

    settings = get_settings()
    if settings.database_url:
        raise fail("TRAINU_DATABASE_URL points to an external server; TrainU does not stop it")
    stopped = embedded.stop(settings.pgdata)
    typer.echo("stopped" if stopped else "not running")


@app.command("status")
def db_status() -> None:
    """Show whether the server runs and which migration revision it is at."""
    from trainu_dagster.db import embedded, migrate

    settings = get_settings()
    if settings.database_url is None:
        status = embedded.status(settings.pgdata)
        state = f"running (pid {status.pid})" if status.running else "stopped"
        typer.echo(f"server:     embedded, {state}")
        typer.echo(f"data:       {settings.pgdata}")
        if not status.running:
            raise typer.Exit(code=3)
    database = running_database(settings)
    typer.echo(f"url:        {database.admin_url.render_as_string()}")
    migrations = migrate.state(database)
    verdict = (
        "up to date" if migrations.up_to_date else "migrations pending: run `trainu db migrate`"
    )
    typer.echo(f"migrations: at {migrations.current or 'none'}, head {migrations.head} ({verdict})")


@app.command("url")
def db_url(
    role: Annotated[str, typer.Option(help="admin, app or auth.")] = "admin",
    dagster: Annotated[bool, typer.Option(help="Dagster's storage database instead.")] = False,
) -> None:
    """Print a connection URL (passwords included: for scripts, not logs)."""
    from trainu_dagster.db.server import APP_ROLE, AUTH_ROLE

    roles = {"admin": None, "app": APP_ROLE, "auth": AUTH_ROLE}
    if role not in roles:
        raise fail(f"--role must be one of {', '.join(roles)}")
    database = running_database(get_settings())
    if dagster:
        typer.echo(database.dagster_storage_url())
    else:
        typer.echo(database.url(role=roles[role]))


@app.command("env")
def db_env() -> None:
    """Print `export PG...` lines for psql and the dbt profile: eval "$(trainu db env)"."""
    for key, value in running_database(get_settings()).libpq_env().items():
        typer.echo(f"export {key}={value!r}")


@app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def db_psql(ctx: typer.Context) -> None:
    """Open psql on the application database (extra arguments go to psql)."""
    from trainu_dagster.db import embedded

    database = running_database(get_settings())
    psql = str(embedded.psql_path())
    os.execv(psql, [psql, database.url(), *ctx.args])  # noqa: S606 (replaces this process)


@app.command("migrate")
def db_migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply migrations with Alembic (re-running is a no-op)."""
    from trainu_dagster.db import migrate
    from trainu_dagster.db.server import ensure_database_exists

    database = running_database(get_settings())
    ensure_database_exists(database, database.name)
    before = migrate.state(database)
    after = migrate.upgrade(database, revision)
    if before.current == after.current:
        typer.echo(f"already at {after.current}; nothing to do")
    else:
        typer.echo(f"migrated {before.current or 'empty database'} -> {after.current}")
