"""Alembic environment: plain SQL migrations, no ORM metadata.

`trainu db migrate` hands in an open connection; the bare `alembic` CLI resolves the
database the same way the rest of TrainU does.
"""

from alembic import context
from sqlalchemy import create_engine

from trainu_dagster.db.server import connect_database
from trainu_dagster.settings import get_settings


def run_migrations(connection) -> None:
    context.configure(connection=connection, transaction_per_migration=True)
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    database = connect_database(get_settings(), start_embedded=False)
    engine = create_engine(database.sqlalchemy_url())
    with engine.connect() as conn:
        run_migrations(conn)
        conn.commit()
