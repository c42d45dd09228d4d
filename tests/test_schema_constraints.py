"""Keys and constraints that protect data whoever writes it."""

from __future__ import annotations

import psycopg
import pytest

from trainu_dagster.db.server import Database


@pytest.fixture(scope="module")
def ids(database: Database) -> dict[str, object]:
    with database.connect() as conn:
        conn.execute(
            "INSERT INTO app.locations (location_id, name) VALUES ('L1', 'A'), ('L2', 'B')"
        )
        user = conn.execute(
            """INSERT INTO app.users (location_id, email, role, display_name, password_hash)
               VALUES ('L1', 't@example.com', 'trainer', 'T', 'x') RETURNING id"""
        ).fetchone()[0]
        trainer = conn.execute(
            "INSERT INTO app.trainers (location_id, name) VALUES ('L1', 'T') RETURNING id"
        ).fetchone()[0]
        client = conn.execute(
            """INSERT INTO app.clients (location_id, ghl_contact_id, trainer_id, name)
               VALUES ('L1', 'c1', %s, 'C') RETURNING id""",
            (trainer,),
        ).fetchone()[0]
    return {"user": user, "trainer": trainer, "client": client}


def test_a_client_cannot_be_assigned_another_studios_trainer(
    admin_conn: psycopg.Connection, ids: dict
) -> None:
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        admin_conn.execute(
            """INSERT INTO app.clients (location_id, ghl_contact_id, trainer_id, name)
               VALUES ('L2', 'c2', %s, 'Other')""",
            (ids["trainer"],),
        )


def test_one_client_per_ghl_contact_per_location(admin_conn: psycopg.Connection, ids: dict) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation):
        admin_conn.execute(
            "INSERT INTO app.clients (location_id, ghl_contact_id, name) VALUES ('L1', 'c1', 'Dup')"
        )


def _message(conn: psycopg.Connection, ids: dict, status: str, **columns: object) -> None:
    if status == "queued":  # a queued message is a send run's claim: who and when
        columns = {"claimed_at": "2026-11-01T10:05Z", "claimed_by": "run-1", **columns}
    names = ["location_id", "client_id", "direction", "channel", "status", "body", *columns]
    values = ["L1", ids["client"], "outbound", "SMS", status, "Hi!", *columns.values()]
    conn.execute(
        f"INSERT INTO app.messages ({', '.join(names)}) VALUES ({', '.join(['%s'] * len(values))})",
        values,
    )


@pytest.mark.parametrize("status", ["approved", "queued", "sent", "delivered"])
def test_nothing_is_sent_without_approval_of_that_exact_text(
    admin_conn: psycopg.Connection, ids: dict, status: str
) -> None:
    with pytest.raises(psycopg.errors.CheckViolation, match="messages_send_requires_approval"):
        _message(admin_conn, ids, status)
    admin_conn.rollback()
    with pytest.raises(psycopg.errors.CheckViolation, match="messages_send_requires_approval"):
        _message(
            admin_conn,
            ids,
            status,
            approved_body="Hi",
            approved_by=ids["user"],
            approved_at="2026-11-01T10:00Z",
        )
    admin_conn.rollback()
    _message(
        admin_conn,
        ids,
        status,
        approved_body="Hi!",
        approved_by=ids["user"],
        approved_at="2026-11-01T10:00Z",
    )


def test_rejection_needs_a_reason(admin_conn: psycopg.Connection, ids: dict) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        _message(admin_conn, ids, "rejected")
    admin_conn.rollback()
    _message(admin_conn, ids, "rejected", rejected_reason="wrong tone")


def test_goal_direction_must_match_its_target(admin_conn: psycopg.Connection, ids: dict) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        admin_conn.execute(
            """INSERT INTO app.goals (location_id, client_id, goal_type, title, unit, direction,
                   baseline_value, target_value, start_date, target_date)
               VALUES ('L1', %s, 'body_weight', 'Lose', 'kg', 'decrease', 80, 85,
                       '2026-01-01', '2026-03-01')""",
            (ids["client"],),
        )


def test_dead_letter_items_need_a_due_time_while_open(admin_conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.CheckViolation):
        admin_conn.execute(
            """INSERT INTO ops.sync_queue (source, payload_ref, error_class, error, status)
               VALUES ('pull', '{"stream": "contacts"}', 'HTTPError', '502', 'pending')"""
        )
