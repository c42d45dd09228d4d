"""One studio's day end to end, on the embedded defaults: a signed AppointmentCreate through
the real receiver reaches the `bookings` mart (real dbt) and, in the same ingest run, a
confirmation draft; the inbox's own `approve` lets the send job deliver it to the GHL
simulator exactly once; the client's reply lands on the thread; and a STOP suppresses the
next approved message before it goes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from ghl_simulator import generate_studio
from ghl_simulator.studio import Studio
from tests.dbt_harness import dbt_ok
from tests.ghl_simulator_harness import running_simulator
from tests.job_harness import ingest, send_job
from tests.receiver_harness import Signer, post
from trainu_dagster import accounts
from trainu_dagster.db.server import Database
from trainu_dagster.inbox import decisions

LOCATION = "loc-e2e"
TRAINER = "user-e2e"
ZONES = ["Pacific/Honolulu", "America/Los_Angeles", "America/New_York", "Europe/London",
         "Asia/Dubai", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney"]  # fmt: skip


def daytime_zone() -> str:
    """A zone where it is mid-day now, so quiet hours hold nothing back whenever CI runs."""
    now = datetime.now(UTC)
    return next(z for z in ZONES if 10 <= now.astimezone(ZoneInfo(z)).hour < 18)


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, trainers=1, clients=5, days=2, seed=5)


@pytest.fixture(scope="module")
def sim_url(studio: Studio):  # noqa: ANN201
    with running_simulator(studio, rate_limit=None) as url:
        yield url


def deliver(receiver_url: str, signer: Signer, payload: dict[str, Any]) -> None:
    body = orjson.dumps(payload | {"locationId": LOCATION, "webhookId": str(uuid.uuid4()),
                                   "timestamp": datetime.now(UTC).isoformat()})  # fmt: skip
    response = post(receiver_url, body, signer.headers(body, "ed25519"))
    assert response.status_code == 200, response.text


def booked(appointment_id: str, contact_id: str, days: int) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=days)
    return {"type": "AppointmentCreate", "appointment": {
        "id": appointment_id, "calendarId": "cal-e2e", "contactId": contact_id,
        "appointmentStatus": "confirmed", "assignedUserId": TRAINER, "title": "PT session",
        "startTime": start.isoformat(), "endTime": (start + timedelta(hours=1)).isoformat(),
        "dateUpdated": datetime.now(UTC).isoformat()}}  # fmt: skip


def replied(contact_id: str, body: str) -> dict[str, Any]:
    return {"type": "InboundMessage", "contactId": contact_id, "body": body,
            "messageId": f"msg-{uuid.uuid4().hex[:10]}", "conversationId": f"conv-{contact_id}",
            "messageType": "SMS", "direction": "inbound",
            "dateAdded": datetime.now(UTC).isoformat()}  # fmt: skip


def approve_draft(database: Database, owner: accounts.User, appointment_id: str) -> tuple:
    """The pending confirmation for the booking, approved as the inbox approves it."""
    with database.connect() as conn:
        draft_id, body, updated_at = conn.execute(
            """SELECT id, body, updated_at FROM app.messages
               WHERE status = 'pending_approval' AND purpose = 'confirmation'
                 AND trigger->>'appointment_id' = %s""",
            (appointment_id,),
        ).fetchone()
        shown = decisions.Loaded(draft_id, updated_at)
        assert decisions.approve(conn, owner, shown, body, now=datetime.now(UTC)).ok
    return draft_id, body


def status(database: Database, message_id: uuid.UUID) -> tuple:
    with database.connect() as conn:
        return conn.execute(
            "SELECT status, suppressed_reason FROM app.messages WHERE id = %s", (message_id,)
        ).fetchone()


def sent_to(studio: Studio, contact_id: str) -> list[str]:
    with studio.lock:
        return [m["body"] for m in studio.messages.values()
                if m["direction"] == "outbound" and m["contactId"] == contact_id
                and m.get("source") == "api"]  # fmt: skip


def test_a_booking_is_confirmed_once_the_reply_lands_and_a_stop_stops_the_next(
    database: Database, receiver_url: str, signer: Signer, studio: Studio, sim_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    zone = daytime_zone()
    client = next(c for c in studio.contacts.values()
                  if not c["deleted"] and c.get("phone") and not c["dnd"])  # fmt: skip
    with database.connect() as conn:
        conn.execute("INSERT INTO app.locations (location_id, name, timezone) "
                     "VALUES (%s, 'End to End Gym', %s)", (LOCATION, zone))  # fmt: skip
        conn.execute("INSERT INTO app.trainers (location_id, ghl_user_id, name) "
                     "VALUES (%s, %s, 'Robin Park')", (LOCATION, TRAINER))  # fmt: skip
        owner = accounts.create_user(conn, location_id=LOCATION, email="owner@e2e.example",
                                     password="a long enough password", role="owner",
                                     display_name="Owner")  # fmt: skip
    deliver(receiver_url, signer, {
        "type": "ContactCreate", "id": client["id"], "firstName": "Sam", "lastName": "Lee",
        "phone": client["phone"], "timezone": zone, "assignedTo": TRAINER, "dnd": False,
        "dateAdded": datetime.now(UTC).isoformat()})  # fmt: skip
    deliver(receiver_url, signer, booked("ap-e2e-1", client["id"], days=3))
    ingest(database)  # applies both and drafts the confirmation in the same run

    dbt_ok(database, tmp_path, "run", "--select", "+bookings")
    with database.connect() as conn:
        assert conn.execute(
            "SELECT outcome FROM marts.bookings WHERE location_id = %s AND appointment_id = %s",
            (LOCATION, "ap-e2e-1"),
        ).fetchone() == ("open",)

    confirmation, text = approve_draft(database, owner, "ap-e2e-1")
    assert send_job(database, sim_url).success
    assert send_job(database, sim_url).success  # a second run finds nothing more to send
    assert status(database, confirmation) == ("sent", None)
    assert sent_to(studio, client["id"]) == [text]  # exactly once, the approved text

    deliver(receiver_url, signer, replied(client["id"], "Yes! See you then"))
    ingest(database)
    with database.connect() as conn:
        thread = conn.execute(
            """SELECT m.direction, m.status, m.trigger->>'intent' FROM app.messages m
               JOIN app.clients c ON c.id = m.client_id
               WHERE c.ghl_contact_id = %s ORDER BY m.created_at""",
            (client["id"],),
        ).fetchall()
    assert thread[0][:2] == ("outbound", "sent")
    assert thread[-1] == ("inbound", "received", "confirm")

    deliver(receiver_url, signer, booked("ap-e2e-2", client["id"], days=5))
    ingest(database)
    queued, _ = approve_draft(database, owner, "ap-e2e-2")
    deliver(receiver_url, signer, replied(client["id"], "STOP"))
    ingest(database)
    assert send_job(database, sim_url).success
    assert status(database, queued) == ("suppressed", "client opted out")
    assert sent_to(studio, client["id"]) == [text]  # nothing after the STOP
