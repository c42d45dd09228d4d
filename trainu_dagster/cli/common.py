"""What the commands share: failing with a message, the settings, and the database.

Nothing heavy is imported here at module level: `trainu --help` loads every command module,
and SQLAlchemy, psycopg or pydantic-settings would add seconds to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from trainu_dagster.db.server import Database
    from trainu_dagster.ghl.client import GhlClient
    from trainu_dagster.settings import Settings


def command_group(help: str) -> typer.Typer:
    """A group of commands, its help in click's plain format: Rich's renderer costs half a
    second of imports on every `--help`, and the CLI should answer at once."""
    return typer.Typer(help=help, no_args_is_help=True, rich_markup_mode=None)


def fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def get_settings() -> Settings:
    """`trainu_dagster.settings.get_settings`, imported when a command first needs it."""
    from trainu_dagster import settings

    return settings.get_settings()


def running_database(settings: Settings) -> Database:
    from trainu_dagster.db.server import DatabaseNotRunning, connect_database

    try:
        return connect_database(settings, start_embedded=False)
    except DatabaseNotRunning as exc:
        raise fail(str(exc)) from exc


def prepare_database(settings: Settings) -> Database:
    """Start the server if embedded, create both databases, migrate to head."""
    from trainu_dagster.db import migrate
    from trainu_dagster.db.server import connect_database, ensure_database_exists

    database = connect_database(settings)
    ensure_database_exists(database, database.name)
    ensure_database_exists(database, database.dagster_database)
    migrate.upgrade(database)
    return database


@contextmanager
def studio_ghl_client(settings: Settings, database: Database) -> Iterator[GhlClient]:
    """GHL as the pipelines reach it: each studio's own token, and the request budget every
    process shares through the database."""
    import psycopg

    from trainu_dagster.connections.credentials import database_credentials
    from trainu_dagster.connections.request_budget import shared_budget_client

    def connect() -> psycopg.Connection:
        return database.connect(autocommit=True)

    credentials = database_credentials(settings, connect)
    with shared_budget_client(
        credentials, base_url=settings.ghl_base_url, connect=connect
    ) as client:
        yield client
