"""app.events and app.audit_log are append-only, enforced by the database itself."""

from __future__ import annotations

import psycopg
import pytest

from trainu_dagster.db.server import Database
from trainu_dagster.observability.product_events import record_event


@pytest.fixture(scope="module", autouse=True)
def seeded(database: Database) -> None:
    with database.connect() as conn:
        conn.execute("INSERT INTO app.locations (location_id, name) VALUES ('L1', 'Studio')")
        user_id = conn.execute(
            """INSERT INTO app.users (location_id, email, role, display_name, password_hash)
               VALUES ('L1', 'o@example.com', 'owner', 'O', 'x') RETURNING id"""
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO app.audit_log (location_id, user_id, action) VALUES ('L1', %s, 'sign_in')",
            (user_id,),
        )
        record_event(conn, "sync_ok", actor="system:test", location_id="L1", properties={"n": 1})


@pytest.mark.parametrize("table", ["app.events", "app.audit_log"])
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {table} SET occurred_at = now()",
        "UPDATE {table} SET occurred_at = now() WHERE false",
        "DELETE FROM {table}",
        "DELETE FROM {table} WHERE id = -1",
        "TRUNCATE {table}",
    ],
)
def test_updates_and_deletes_are_refused_even_for_the_superuser(
    admin_conn: psycopg.Connection, table: str, statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"):
        admin_conn.execute(statement.format(table=table))


def test_appending_still_works_and_rows_survive(admin_conn: psycopg.Connection) -> None:
    before = admin_conn.execute("SELECT count(*) FROM app.events").fetchone()[0]
    event_id = record_event(admin_conn, "sync_retry", actor="system:test", location_id="L1")
    admin_conn.commit()
    rows = admin_conn.execute("SELECT event_type FROM app.events WHERE id = %s", (event_id,))
    assert rows.fetchall() == [("sync_retry",)]
    assert admin_conn.execute("SELECT count(*) FROM app.events").fetchone()[0] == before + 1
