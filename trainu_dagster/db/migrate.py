"""Schema migrations through Alembic (plain SQL revisions in `migrations/`)."""

from __future__ import annotations

from dataclasses import dataclass

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from psycopg import sql
from sqlalchemy import create_engine, text

from trainu_dagster.db.server import APP_ROLE, AUTH_ROLE, Database
from trainu_dagster.settings import PROJECT_ROOT

# Serialises concurrent `migrate` calls against one database (arbitrary constant).
MIGRATION_LOCK_KEY = 7_301_001


@dataclass(frozen=True)
class MigrationState:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def alembic_config() -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations found"
    return head


def state(database: Database) -> MigrationState:
    engine = create_engine(database.sqlalchemy_url())
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    return MigrationState(current=current, head=head_revision())


def upgrade(database: Database, revision: str = "head") -> MigrationState:
    """Apply pending migrations (a no-op when at head), then sync role passwords."""
    config = alembic_config()
    engine = create_engine(database.sqlalchemy_url())
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            conn.commit()
            try:
                config.attributes["connection"] = conn
                command.upgrade(config, revision)
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                conn.commit()
    finally:
        engine.dispose()
    _secure_database(database)
    return state(database)


def downgrade(database: Database, revision: str) -> MigrationState:
    config = alembic_config()
    engine = create_engine(database.sqlalchemy_url())
    try:
        with engine.begin() as conn:
            config.attributes["connection"] = conn
            command.downgrade(config, revision)
    finally:
        engine.dispose()
    return state(database)


def _secure_database(database: Database) -> None:
    """Per-database and per-role state that revisions cannot carry.

    Only TrainU's roles may connect, and nobody else gets TEMP; role passwords come
    from settings alone, so none is ever written in a migration.
    """
    name = sql.Identifier(database.name)
    roles = sql.SQL(", ").join(sql.Identifier(r) for r in (APP_ROLE, AUTH_ROLE))
    with database.connect(autocommit=True) as conn:
        conn.execute(sql.SQL("REVOKE ALL ON DATABASE {} FROM PUBLIC").format(name))
        conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(name, roles))
        for role in (APP_ROLE, AUTH_ROLE):
            password = database.role_passwords.get(role)
            if password:
                conn.execute(
                    sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(password)
                    )
                )
