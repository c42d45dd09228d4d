"""A studio's booking on a running stack (`trainu up`, simulator defaults), as GHL sends
it, through to the draft a trainer approves: for the stack test and `make bench-stack`."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import orjson
import psycopg

from ghl_simulator import SIMULATED_LOCATION
from ghl_simulator.webhooks import load_or_create_signing_key
from trainu_dagster import accounts
from trainu_dagster.ghl.signatures import ED25519_HEADER, sign_ed25519
from trainu_dagster.inbox import decisions
from trainu_dagster.messaging import studio_settings
from trainu_dagster.messaging.drafts_store import OPEN


def owner(conn: psycopg.Connection) -> accounts.User:
    """The simulated studio's demo owner."""
    return accounts.User(*conn.execute(
        "SELECT id, location_id, email, role, display_name FROM app.users "
        "WHERE role = 'owner' AND location_id = %s", (SIMULATED_LOCATION,)).fetchone())  # fmt: skip


def sending_at_any_hour(conn: psycopg.Connection) -> None:
    """The owner opens the studio's sending window to the whole day (Settings), so a run
    at night in New York is not held until 08:00 there, as it rightly would be."""
    current = studio_settings.load(conn, SIMULATED_LOCATION)
    whole_day = replace(
        current, quiet_hours_start=clock_time(0), quiet_hours_end=clock_time(23, 59)
    )
    studio_settings.save(conn, owner(conn), whole_day)


def reachable_clients(
    conn: psycopg.Connection, count: int, *, excluding: list[str] | None = None
) -> list[tuple[str, str]]:
    """Clients a confirmation may be drafted for now (`drafts_rules.wanted`): reachable by SMS,
    not opted out in TrainU or GHL (DND), none of their drafts open or waiting to be sent,
    not among `excluding`; (GHL contact id, their trainer's GHL user id)."""
    return conn.execute(
        """SELECT c.ghl_contact_id, t.ghl_user_id FROM app.clients c
           JOIN app.trainers t ON t.id = c.trainer_id
           LEFT JOIN raw.ghl_contacts g
                  ON g.location_id = c.location_id AND g.contact_id = c.ghl_contact_id
           WHERE c.location_id = %s AND c.phone IS NOT NULL AND c.opted_out_at IS NULL
             AND NOT coalesce(g.dnd, false)
             AND NOT EXISTS (SELECT FROM app.messages m WHERE m.client_id = c.id
                             AND m.status = ANY(%s))
             AND c.ghl_contact_id <> ALL(%s)
           ORDER BY random() LIMIT %s""",
        (SIMULATED_LOCATION, [*OPEN, "approved", "queued"], excluding or [], count),
    ).fetchall()


def opted_out(conn: psycopg.Connection, contact_id: str) -> bool:
    """Whether the client may no longer be written to (TrainU's opt-out or GHL's DND): the
    live studio does that to some clients, now and then, as real ones do."""
    return conn.execute(
        """SELECT c.opted_out_at IS NOT NULL OR coalesce(g.dnd, false) FROM app.clients c
           LEFT JOIN raw.ghl_contacts g
                  ON g.location_id = c.location_id AND g.contact_id = c.ghl_contact_id
           WHERE c.location_id = %s AND c.ghl_contact_id = %s""",
        (SIMULATED_LOCATION, contact_id),
    ).fetchone()[0]


def book(conn: psycopg.Connection, client: tuple[str, str], receiver_url: str,
         state_dir: Path) -> str:  # fmt: skip
    """A signed AppointmentCreate for `client` in 3–5 days, posted to the receiver with the
    simulator's key, as the simulator (GHL) would; returns the appointment id."""
    contact_id, trainer = client
    start = datetime.now(UTC) + timedelta(days=3, hours=random.randint(0, 48))  # noqa: S311
    calendar = conn.execute("SELECT max(calendar_id) FROM raw.ghl_appointments").fetchone()[0]
    appointment: dict[str, Any] = {
        "id": f"stack-{uuid.uuid4().hex[:12]}", "calendarId": calendar, "contactId": contact_id,
        "appointmentStatus": "confirmed", "assignedUserId": trainer, "title": "PT session",
        "startTime": start.isoformat(), "endTime": (start + timedelta(hours=1)).isoformat(),
        "dateUpdated": datetime.now(UTC).isoformat()}  # fmt: skip
    body = orjson.dumps({"type": "AppointmentCreate", "locationId": SIMULATED_LOCATION,
                         "webhookId": str(uuid.uuid4()), "timestamp": datetime.now(UTC).isoformat(),
                         "appointment": appointment})  # fmt: skip
    key = load_or_create_signing_key(state_dir / "simulator" / "ed25519.pem")
    httpx.post(f"{receiver_url}/webhooks/ghl", content=body,
               headers={ED25519_HEADER: sign_ed25519(body, key),
                        "content-type": "application/json"}).raise_for_status()  # fmt: skip
    return appointment["id"]


def draft_for(conn: psycopg.Connection, appointment_id: str,
              timeout: float) -> tuple[UUID, str, datetime, str] | None:  # fmt: skip
    """The draft the booking made (id, text, updated_at, status), once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        draft = conn.execute(
            "SELECT id, body, updated_at, status FROM app.messages "
            "WHERE trigger->>'appointment_id' = %s", (appointment_id,)).fetchone()  # fmt: skip
        if draft is not None:
            return draft
        time.sleep(0.05)
    return None


def approve(conn: psycopg.Connection, draft: tuple[UUID, str, datetime, str]) -> None:
    """The owner approves the draft as shown, through the inbox's own function."""
    message_id, text, updated_at, _ = draft
    with conn.transaction():
        done = decisions.approve(conn, owner(conn), decisions.Loaded(message_id, updated_at),
                                 text, now=datetime.now(UTC))  # fmt: skip
    assert done.ok, done.detail


def sent(conn: psycopg.Connection, message_id: UUID, timeout: float) -> str | None:
    """GHL's message id, once the outbox has sent the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, ghl_id = conn.execute(
            "SELECT status, ghl_message_id FROM app.messages WHERE id = %s", (message_id,)
        ).fetchone()
        if status in ("sent", "delivered"):
            return ghl_id
        time.sleep(0.05)
    return None
