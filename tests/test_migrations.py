"""Migrations apply to an empty database, re-run as a no-op, and report their state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from trainu_dagster.db import migrate
from trainu_dagster.db.server import APP_ROLE, AUTH_ROLE, Database

TRAINU = str(Path(sys.executable).parent / "trainu")

EXPECTED_TABLES = {
    "raw": {
        "webhook_events",
        "ghl_contacts",
        "ghl_appointments",
        "ghl_messages",
        "ghl_opportunities",
        "pull_state",
        "ghl_notes",
        "ghl_tasks",
        "ghl_opt_outs",
        "ghl_appointment_start_times",
        "backfills",
    },
    "app": {
        "locations",
        "users",
        "sessions",
        "trainers",
        "clients",
        "goals",
        "goal_entries",
        "messages",
        "insights",
        "agent_events",
        "events",
        "audit_log",
        "ghl_connections",
        "workflow_webhook_secrets",
    },
    "ops": {
        "sync_queue",
        "webhook_rejections",
        "webhook_deferrals",
        "ghl_request_budget",
        "ghl_requests",
    },
}


def trainu(database: Database, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINU_DATABASE_URL": database.url()}
    return subprocess.run([TRAINU, *args], env=env, capture_output=True, text=True, timeout=120)


def schema_snapshot(database: Database) -> dict[str, list[tuple]]:
    queries = {
        "columns": """SELECT table_schema, table_name, column_name, data_type, is_nullable,
                             column_default
                      FROM information_schema.columns
                      WHERE table_schema IN ('raw', 'app', 'ops') ORDER BY 1, 2, 3""",
        "constraints": """SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid)
                          FROM pg_constraint WHERE connamespace::regnamespace::text
                          IN ('raw', 'app', 'ops') ORDER BY 1, 2""",
        "indexes": """SELECT schemaname, indexname, indexdef FROM pg_indexes
                      WHERE schemaname IN ('raw', 'app', 'ops') ORDER BY 1, 2""",
        "policies": """SELECT schemaname, tablename, policyname, roles::text, cmd, qual, with_check
                       FROM pg_policies ORDER BY 1, 2, 3""",
    }
    with database.connect() as conn:
        return {name: conn.execute(query).fetchall() for name, query in queries.items()}


def tables(database: Database) -> dict[str, set[str]]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname IN ('raw', 'app', 'ops')"
        ).fetchall()
    found: dict[str, set[str]] = {}
    for schema, table in rows:
        found.setdefault(schema, set()).add(table)
    return found


def test_fresh_database_migrates_to_head_and_reports_it(empty_database: Database) -> None:
    before = trainu(empty_database, "db", "status")
    assert before.returncode == 0, before.stderr
    assert f"at none, head {migrate.head_revision()} (migrations pending" in before.stdout

    result = trainu(empty_database, "db", "migrate")
    assert result.returncode == 0, result.stderr
    assert f"migrated empty database -> {migrate.head_revision()}" in result.stdout

    assert tables(empty_database) == EXPECTED_TABLES
    status = trainu(empty_database, "db", "status")
    assert (
        f"at {migrate.head_revision()}, head {migrate.head_revision()} (up to date)"
        in status.stdout
    )


def test_rerunning_migrations_is_a_no_op(database: Database) -> None:
    snapshot = schema_snapshot(database)
    state = migrate.upgrade(database)
    assert state.up_to_date
    result = trainu(database, "db", "migrate")
    assert result.returncode == 0, result.stderr
    assert "nothing to do" in result.stdout
    assert schema_snapshot(database) == snapshot


def test_downgrade_to_base_and_back_restores_the_same_schema(empty_database: Database) -> None:
    migrate.upgrade(empty_database)
    snapshot = schema_snapshot(empty_database)
    assert migrate.downgrade(empty_database, "base").current is None
    assert tables(empty_database) == {}
    migrate.upgrade(empty_database)
    assert schema_snapshot(empty_database) == snapshot


def test_every_table_forces_row_level_security(database: Database) -> None:
    with database.connect() as conn:
        rows = conn.execute(
            """SELECT c.oid::regclass::text, c.relrowsecurity, c.relforcerowsecurity
               FROM pg_class c WHERE c.relkind = 'r'
               AND c.relnamespace::regnamespace::text IN ('raw', 'app', 'ops')"""
        ).fetchall()
    assert len(rows) == sum(len(t) for t in EXPECTED_TABLES.values())
    assert [name for name, enabled, forced in rows if not (enabled and forced)] == []


def test_app_roles_are_neither_superuser_nor_owner(database: Database) -> None:
    with database.connect() as conn:
        roles = conn.execute(
            """SELECT rolname, rolsuper, rolbypassrls, rolcreaterole, rolcreatedb
               FROM pg_roles WHERE rolname = ANY(%s)""",
            ([APP_ROLE, AUTH_ROLE],),
        ).fetchall()
        owned = conn.execute(
            """SELECT count(*) FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner
               WHERE r.rolname = ANY(%s)""",
            ([APP_ROLE, AUTH_ROLE],),
        ).fetchone()
    assert sorted(roles) == [
        (APP_ROLE, False, False, False, False),
        (AUTH_ROLE, False, False, False, False),
    ]
    assert owned == (0,)


def test_webhook_idempotency_key_is_unique(admin_conn: psycopg.Connection) -> None:
    insert = """INSERT INTO raw.webhook_events (idempotency_key, route, signature_scheme, body,
                                                payload, correlation_id)
                VALUES ('wh-1', 'marketplace', 'ed25519', '\\x7b7d', '{}', gen_random_uuid())"""
    admin_conn.execute(insert)
    with pytest.raises(psycopg.errors.UniqueViolation):
        admin_conn.execute(insert)
