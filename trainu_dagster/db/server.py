"""Which Postgres TrainU talks to, and the URLs each component uses to reach it.

One server holds everything: the application database (schemas raw/app/ops plus the
dbt-built ones) and a separate database for Dagster's own storage. The pipelines
connect as the administrative role; the Streamlit app connects as `trainu_app`, a
login role that is neither superuser nor table owner, so Row Level Security binds it.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from trainu_dagster.db import embedded
from trainu_dagster.settings import Settings

APP_ROLE = "trainu_app"
AUTH_ROLE = "trainu_auth"


@dataclass(frozen=True)
class Database:
    """URLs for one application database on one server."""

    admin_url: URL
    dagster_database: str
    role_passwords: dict[str, str | None]

    @property
    def name(self) -> str:
        assert self.admin_url.database is not None
        return self.admin_url.database

    def _url(self, *, database: str | None = None, role: str | None = None) -> URL:
        url = self.admin_url
        if database is not None:
            url = url.set(database=database)
        if role is not None:
            url = url._replace(username=role, password=self.role_passwords.get(role))
        return url

    def url(self, *, database: str | None = None, role: str | None = None) -> str:
        """A libpq URL (psycopg, psql, dbt)."""
        url = self._url(database=database, role=role).set(drivername="postgresql")
        return url.render_as_string(hide_password=False)

    def sqlalchemy_url(self, *, database: str | None = None) -> str:
        url = self._url(database=database).set(drivername="postgresql+psycopg")
        return url.render_as_string(hide_password=False)

    def dagster_storage_url(self) -> str:
        # dagster-postgres must get psycopg2: under SQLAlchemy 2.1 a bare postgresql://
        # means psycopg 3, whose server-side binding breaks Dagster's NOTIFY statements.
        url = self._url(database=self.dagster_database).set(drivername="postgresql+psycopg2")
        return url.render_as_string(hide_password=False)

    def connect(self, *, role: str | None = None, autocommit: bool = False) -> psycopg.Connection:
        return psycopg.connect(self.url(role=role), autocommit=autocommit)

    def libpq_env(self) -> dict[str, str]:
        """PG* variables for psql and the dbt profile."""
        params = psycopg.conninfo.conninfo_to_dict(self.url())
        names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "dbname": "PGDATABASE"}
        env = {names[k]: str(v) for k, v in params.items() if k in names and v is not None}
        if params.get("password"):
            env["PGPASSWORD"] = str(params["password"])
        env.setdefault("PGPORT", "5432")
        return env


class DatabaseNotRunning(RuntimeError):
    pass


def connect_database(settings: Settings, *, start_embedded: bool = True) -> Database:
    """Resolve the configured server, starting the embedded one if asked and needed."""
    if settings.database_url is not None:
        admin_url = make_url(settings.database_url.get_secret_value())
        if not admin_url.database:
            admin_url = admin_url.set(database=settings.database_name)
    else:
        status = embedded.status(settings.pgdata)
        if not status.running:
            if not start_embedded:
                raise DatabaseNotRunning(
                    f"the embedded database is not running (data in {settings.pgdata}); "
                    "start it with `trainu db start`"
                )
            status = embedded.start(settings.pgdata)
        admin_url = make_url(status.url(settings.database_name))
    if admin_url.password == "":
        admin_url = admin_url._replace(password=None)
    passwords = {
        APP_ROLE: settings.app_db_password.get_secret_value() if settings.app_db_password else None,
        AUTH_ROLE: settings.auth_db_password.get_secret_value()
        if settings.auth_db_password
        else None,
    }
    return Database(
        admin_url=admin_url,
        dagster_database=settings.dagster_database_name,
        role_passwords=passwords,
    )


def ensure_database_exists(database: Database, name: str, *, template: str | None = None) -> bool:
    """CREATE DATABASE unless present; returns whether it was created."""
    with psycopg.connect(database.url(database="postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists:
            return False
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        conn.execute(statement)
        return True
