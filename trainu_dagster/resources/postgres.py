"""The application database as a Dagster resource."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from dagster import ConfigurableResource
from pydantic import SecretStr

from trainu_dagster.db.server import Database, connect_database
from trainu_dagster.settings import Settings


class PostgresResource(ConfigurableResource["PostgresResource"]):
    """Pipelines connect as the administrative role (RLS does not scope them).

    Without `database_url` the resource finds the server the way the CLI does
    (TRAINU_DATABASE_URL, else the running embedded server); it never starts one.
    """

    database_url: str | None = None

    def database(self) -> Database:
        settings = (
            Settings(database_url=SecretStr(self.database_url)) if self.database_url else Settings()
        )
        return connect_database(settings, start_embedded=False)

    @contextmanager
    def connect(self, *, autocommit: bool = False) -> Iterator[psycopg.Connection]:
        with self.database().connect(autocommit=autocommit) as conn:
            yield conn
