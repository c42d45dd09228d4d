"""Escalations: client messages a person must answer (crisis, complaint, medical
question), never drafted. The owner sees them in their own queue, assigns them to a
trainer and resolves them with a note; each step is in app.events and app.audit_log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from trainu_dagster import accounts
from trainu_dagster.inbox.decisions import Outcome, record_action


@dataclass(frozen=True)
class Escalation:
    id: UUID
    client_id: UUID
    client_name: str
    category: str
    message: str
    trigger: dict[str, Any]
    created_at: datetime
    assignee: UUID | None
    assignee_name: str | None
    correlation_id: UUID


def open_escalations(conn: psycopg.Connection) -> list[Escalation]:
    """Unresolved escalations, oldest first: a person is waiting on each."""
    with conn.cursor(row_factory=class_row(Escalation)) as cur:
        return cur.execute(
            """SELECT m.id, m.client_id, c.name AS client_name, m.escalation_reason AS category,
                      m.body AS message, m.trigger, m.created_at,
                      m.escalation_assignee AS assignee, u.display_name AS assignee_name,
                      m.correlation_id
               FROM app.messages m
               JOIN app.clients c ON c.id = m.client_id
               LEFT JOIN app.users u ON u.id = m.escalation_assignee
               WHERE m.status = 'escalated' AND m.escalation_resolved_at IS NULL
               ORDER BY m.created_at"""
        ).fetchall()


def assign(
    conn: psycopg.Connection, user: accounts.User, escalation: UUID, assignee: UUID
) -> Outcome:
    """Hand the escalation to a trainer (or the owner) of the same studio."""
    if user.role != "owner":
        return Outcome(escalation, False, "Only the studio's owner assigns escalations.")
    row = conn.execute(
        """UPDATE app.messages m SET escalation_assignee = u.id, updated_at = now()
           FROM app.users u
           WHERE m.id = %s AND u.id = %s AND u.location_id = m.location_id
             AND u.role IN ('owner', 'trainer') AND u.disabled_at IS NULL
             AND m.status = 'escalated' AND m.escalation_resolved_at IS NULL
           RETURNING m.location_id, m.correlation_id, u.display_name""",
        (escalation, assignee),
    ).fetchone()
    if row is None:
        return Outcome(escalation, False, "Not assigned: it is resolved, or not yours to assign.")
    record_action(conn, user, "escalation_assigned", escalation, row[0], row[1],
                  {"assignee": str(assignee)})  # fmt: skip
    return Outcome(escalation, True, f"Assigned to {row[2]}.")


def resolve(
    conn: psycopg.Connection, user: accounts.User, escalation: UUID, note: str, *, now: datetime
) -> Outcome:
    """Close the escalation, saying what was done (the owner, or the trainer assigned)."""
    if not note.strip():
        return Outcome(escalation, False, "Say how it was resolved.")
    row = conn.execute(
        """UPDATE app.messages SET escalation_resolved_at = %(now)s,
               escalation_resolved_by = %(user)s, escalation_resolution = %(note)s,
               updated_at = %(now)s
           WHERE id = %(id)s AND status = 'escalated' AND escalation_resolved_at IS NULL
             AND (%(owner)s OR escalation_assignee = %(user)s)
           RETURNING location_id, correlation_id""",
        {"now": now, "user": user.id, "note": note.strip(), "id": escalation,
         "owner": user.role == "owner"},
    ).fetchone()  # fmt: skip
    if row is None:
        return Outcome(escalation, False, "Not resolved: it already is, or it is not yours.")
    record_action(conn, user, "escalation_resolved", escalation, row[0], row[1],
                  {"resolution": note.strip()})  # fmt: skip
    return Outcome(escalation, True, "Resolved.")
