"""Two studios side by side, with owners, trainers, clients and a row of every kind."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from trainu_dagster import accounts
from trainu_dagster.db.server import AUTH_ROLE, Database

PASSWORD = "correct horse battery staple"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)

# client -> (location, trainer, has a sign-in)
CLIENTS = {
    "a1": ("L1", "A", True),
    "a2": ("L1", "A", False),
    "b1": ("L1", "B", False),
    "c1": ("L2", "C", False),
}
TRAINERS = {"A": "L1", "B": "L1", "C": "L2"}
LEAD_CONTACT = "contact-lead-L1"  # a GHL contact who is not (yet) a client


@dataclass
class World:
    database: Database
    users: dict[str, accounts.User] = field(default_factory=dict)
    client_ids: dict[str, UUID] = field(default_factory=dict)

    def token(self, who: str) -> str:
        with self.database.connect(role=AUTH_ROLE) as conn:
            token = accounts.sign_in(
                conn, self.users[who].email, PASSWORD, lifetime=timedelta(hours=1)
            )
        assert token is not None
        return token

    @property
    def client_names(self) -> dict[UUID, str]:
        return {v: k for k, v in self.client_ids.items()}


def contact(client: str) -> str:
    return f"contact-{client}"


def build_world(database: Database) -> World:
    world = World(database)
    with database.connect() as conn:
        for location in ("L1", "L2"):
            conn.execute(
                "INSERT INTO app.locations (location_id, name, timezone) VALUES (%s, %s, %s)",
                (location, f"Studio {location}", "Europe/London"),
            )
            world.users[f"owner-{location}"] = _user(conn, location, f"owner-{location}", "owner")
        trainer_ids = {}
        for trainer, location in TRAINERS.items():
            user = world.users[f"trainer-{trainer}"] = _user(
                conn, location, f"trainer-{trainer}", "trainer"
            )
            trainer_ids[trainer] = conn.execute(
                """INSERT INTO app.trainers (location_id, user_id, ghl_user_id, name)
                   VALUES (%s, %s, %s, %s) RETURNING id""",
                (location, user.id, f"ghl-user-{trainer}", f"Trainer {trainer}"),
            ).fetchone()[0]
        for client, (location, trainer, signs_in) in CLIENTS.items():
            user_id = None
            if signs_in:
                world.users[f"client-{client}"] = _user(
                    conn, location, f"client-{client}", "client"
                )
                user_id = world.users[f"client-{client}"].id
            client_id = world.client_ids[client] = conn.execute(
                """INSERT INTO app.clients (location_id, ghl_contact_id, trainer_id, user_id, name)
                   VALUES (%s, %s, %s, %s, %s) RETURNING id""",
                (location, contact(client), trainer_ids[trainer], user_id, f"Client {client}"),
            ).fetchone()[0]
            _client_rows(
                conn,
                location,
                client,
                client_id,
                trainer_ids[trainer],
                world.users[f"owner-{location}"].id,
            )
        for location in ("L1", "L2"):
            _location_rows(conn, location)
        _raw_contact(conn, "L1", LEAD_CONTACT)
    return world


def _user(conn: psycopg.Connection, location: str, name: str, role: str) -> accounts.User:
    return accounts.create_user(
        conn,
        location_id=location,
        email=f"{name}@example.com",
        password=PASSWORD,
        role=role,
        display_name=name,  # type: ignore[arg-type]
    )


def _raw_contact(conn: psycopg.Connection, location: str, contact_id: str) -> None:
    conn.execute(
        """INSERT INTO raw.ghl_contacts
               (location_id, contact_id, source_updated_at, payload, source)
           VALUES (%s, %s, %s, '{}', 'pull')""",
        (location, contact_id, NOW),
    )


def _client_rows(conn, location, client, client_id, trainer_id, approver) -> None:
    goal_id = conn.execute(
        """INSERT INTO app.goals (location_id, client_id, goal_type, title, unit, direction,
                                  baseline_value, target_value, start_date, target_date)
           VALUES (%s, %s, 'body_weight', 'Lose 5 kg', 'kg', 'decrease', 80, 75,
                   '2026-09-01', '2026-12-31') RETURNING id""",
        (location, client_id),
    ).fetchone()[0]
    conn.execute(
        """INSERT INTO app.goal_entries (location_id, goal_id, client_id, value, recorded_at)
           VALUES (%s, %s, %s, 78.5, %s)""",
        (location, goal_id, client_id, NOW),
    )
    insight_id = conn.execute(
        """INSERT INTO app.insights (location_id, client_id, scored_at, risk_score, risk_band,
                                     reasons, model_version)
           VALUES (%s, %s, %s, 0.72, 'high', %s, 'test') RETURNING id""",
        (location, client_id, NOW, Jsonb([{"feature": "days_since_last_session", "value": 21}])),
    ).fetchone()[0]
    for status in ("pending_approval", "sent"):
        approved = status == "sent"
        conn.execute(
            """INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel,
                                         status, body, approved_body, approved_by, approved_at,
                                         insight_id)
               VALUES (%s, %s, %s, 'outbound', 'SMS', %s, 'See you Tuesday?', %s, %s, %s, %s)""",
            (
                location,
                client_id,
                trainer_id,
                status,
                "See you Tuesday?" if approved else None,
                approver if approved else None,
                NOW if approved else None,
                insight_id,
            ),
        )
    conn.execute(
        """INSERT INTO app.messages (location_id, client_id, direction, channel, status, body)
           VALUES (%s, %s, 'inbound', 'SMS', 'received', 'Yes!')""",
        (location, client_id),
    )
    conn.execute(
        """INSERT INTO app.agent_events (location_id, agent, event_type, client_id)
           VALUES (%s, 'drafter', 'draft_created', %s)""",
        (location, client_id),
    )
    _raw_contact(conn, location, contact(client))
    for table, key in (
        ("ghl_appointments", "appointment_id"),
        ("ghl_messages", "message_id"),
        ("ghl_opportunities", "opportunity_id"),
    ):
        conn.execute(
            f"""INSERT INTO raw.{table} (location_id, {key}, contact_id, source_updated_at,
                                         payload, source)
                VALUES (%s, %s, %s, %s, '{{}}', 'webhook')""",
            (location, f"{table}-{client}", contact(client), NOW),
        )


def _location_rows(conn: psycopg.Connection, location: str) -> None:
    event_id = conn.execute(
        """INSERT INTO raw.webhook_events (idempotency_key, location_id, route, signature_scheme,
                                           body, payload, correlation_id)
           VALUES (%s, %s, 'marketplace', 'ed25519', '\\x7b7d', '{}', gen_random_uuid())
           RETURNING id""",
        (f"wh-{location}", location),
    ).fetchone()[0]
    conn.execute(
        """INSERT INTO ops.sync_queue (location_id, source, webhook_event_id, error_class, error,
                                       next_attempt_at)
           VALUES (%s, 'webhook', %s, 'ValueError', 'boom', now())""",
        (location, event_id),
    )
    conn.execute(
        "INSERT INTO raw.pull_state (location_id, stream) VALUES (%s, 'contacts')", (location,)
    )
    conn.execute(
        "INSERT INTO app.events (location_id, event_type, actor) VALUES (%s, 'sync_ok', 'system')",
        (location,),
    )


def land_ghl_rows(conn: psycopg.Connection) -> None:
    """Real bookings and messages in place of the world's placeholder raw rows: per
    client a session attended, one missed and one ahead, with the client's trainer; and
    an unassigned trial session of a lead."""
    conn.execute("DELETE FROM raw.ghl_appointments")
    bookings = [
        (location, f"appt-{client}-{n}", contact(client), f"ghl-user-{trainer}", status, days)
        for client, (location, trainer, _) in CLIENTS.items()
        for n, (status, days) in enumerate([("showed", -8), ("noshow", -1), ("confirmed", 2)])
    ]
    bookings.append(("L1", "appt-lead", LEAD_CONTACT, None, "showed", -3))
    for booking in bookings:
        insert_booking(conn, *booking)
    conn.execute(
        """UPDATE raw.ghl_messages
           SET conversation_id = 'conv-' || contact_id, direction = 'inbound',
               message_type = 'SMS', status = 'delivered', date_added = %s""",
        (NOW - timedelta(days=1),),
    )


def insert_booking(
    conn: psycopg.Connection,
    location: str,
    appointment: str,
    contact_id: str,
    trainer: str | None,
    status: str,
    days: int,
) -> None:
    start = NOW + timedelta(days=days)
    conn.execute(
        """INSERT INTO raw.ghl_appointments
               (location_id, appointment_id, calendar_id, contact_id, assigned_user_id, status,
                title, start_time, end_time, date_added, source_updated_at, payload, source)
           VALUES (%s, %s, 'cal-1', %s, %s, %s, 'Session', %s, %s, %s, %s, '{}', 'webhook')""",
        (
            location,
            appointment,
            contact_id,
            trainer,
            status,
            start,
            start + timedelta(hours=1),
            start - timedelta(days=7),
            min(start, NOW),
        ),
    )


def add_draft(
    world: World,
    client: str,
    purpose: str,
    body: str = "Hi! Still on for tomorrow at 9?",
    *,
    status: str = "pending_approval",
    scheduled_for: datetime | None = None,
    risk: float | None = None,
) -> UUID:
    """A draft as the drafter stores it (optionally with a fresh insight for its client)."""
    with world.database.connect() as conn:
        client_id = world.client_ids[client]
        location, trainer = conn.execute(
            "SELECT location_id, trainer_id FROM app.clients WHERE id = %s", (client_id,)
        ).fetchone()
        if risk is not None:
            conn.execute(
                """INSERT INTO app.insights (location_id, client_id, scored_at, risk_score,
                                             risk_band, reasons, reason, model_version)
                   VALUES (%s, %s, now(), %s, 'high', '[]', 'no session in 20 days', %s)""",
                (location, client_id, risk, f"test-{risk}-{purpose}-{body}"),
            )
        return conn.execute(
            """INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel,
                   status, body, draft_body, generator, purpose, trigger, scheduled_for)
               VALUES (%s, %s, %s, 'outbound', 'SMS', %s, %s, %s, 'template', %s, %s, %s)
               RETURNING id""",
            (location, client_id, trainer, status, body, body, purpose,
             Jsonb({"event": "booking_created"}), scheduled_for),
        ).fetchone()[0]  # fmt: skip


def close_open_drafts(world: World) -> None:
    """Each test starts from an inbox holding only its own drafts."""
    with world.database.connect() as conn:
        conn.execute(
            """UPDATE app.messages SET status = 'suppressed', suppressed_reason = 'test reset'
               WHERE status IN ('pending_approval', 'needs_manual')"""
        )


def decide_draft(
    world: World,
    draft: UUID,
    decision: str,
    *,
    drafted_at: datetime,
    decided_at: datetime,
    sent_at: datetime | None = None,
) -> None:
    """What the inbox and the outbox record for a draft (made at `drafted_at`): the
    decision (approved_unedited, approved_edited with new text, or rejected) by the
    studio's owner, and for an approved one its send when `sent_at` is given."""
    approved = decision != "rejected"
    with world.database.connect() as conn:
        location = conn.execute(
            "SELECT location_id FROM app.messages WHERE id = %s", (draft,)
        ).fetchone()[0]
        status = "rejected" if not approved else "sent" if sent_at else "approved"
        conn.execute(
            """UPDATE app.messages
               SET status = %(status)s, created_at = %(drafted_at)s,
                   body = CASE WHEN %(edited)s THEN body || ' (edited)' ELSE body END,
                   approved_body = CASE
                       WHEN NOT %(approved)s THEN NULL
                       WHEN %(edited)s THEN body || ' (edited)' ELSE body END,
                   approved_by = CASE WHEN %(approved)s THEN %(by)s::uuid END,
                   approved_at = CASE WHEN %(approved)s THEN %(decided_at)s END,
                   rejected_reason = CASE WHEN %(approved)s THEN NULL ELSE 'not now' END,
                   decision = %(decision)s, decided_at = %(decided_at)s, sent_at = %(sent_at)s
               WHERE id = %(draft)s""",
            {
                "status": status,
                "drafted_at": drafted_at,
                "edited": decision == "approved_edited",
                "approved": approved,
                "by": world.users[f"owner-{location}"].id,
                "decided_at": decided_at,
                "decision": decision,
                "sent_at": sent_at,
                "draft": draft,
            },
        )


def unassign_draft(world: World, draft: UUID) -> None:
    """A draft with no trainer (its client had none when it was made)."""
    with world.database.connect() as conn:
        conn.execute("UPDATE app.messages SET trainer_id = NULL WHERE id = %s", (draft,))
