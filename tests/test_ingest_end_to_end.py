"""Every GHL webhook example, signed and sent over HTTP to the real receiver, then applied
by the ingest path into the right raw table; and a shuffled, duplicated stream ends in the
newest state."""

from __future__ import annotations

import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from tests.receiver_harness import Signer, post
from trainu_dagster.db.server import Database
from trainu_dagster.ingest.process import process_pending

EXAMPLES = Path(__file__).parent / "data" / "ghl" / "webhook-examples"
TABLE_BY_PREFIX = {
    "Contact": "ghl_contacts",
    "Appointment": "ghl_appointments",
    "InboundMessage": "ghl_messages",
    "OutboundMessage": "ghl_messages",
    "Opportunity": "ghl_opportunities",
    "Note": "ghl_notes",
    "Task": "ghl_tasks",
}


def fresh(payload: dict) -> bytes:
    """Re-stamp a recorded example so it falls inside the replay window."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    if "webhookId" in payload or "type" in payload:
        payload = payload | {"timestamp": now}
    else:
        payload = payload | {"customData": {**payload.get("customData", {}), "timestamp": now}}
    return orjson.dumps(payload)


def land_all(receiver_url: str, signer: Signer, bodies: list[tuple[bytes, str]]) -> list[int]:
    statuses = []
    for body, route in bodies:
        path, scheme = (
            ("/webhooks/ghl", "ed25519")
            if route == "marketplace"
            else ("/webhooks/ghl/workflow", "hmac-sha256")
        )
        response = post(receiver_url, body, signer.headers(body, scheme), path)
        assert response.status_code == 200, response.text
        statuses.append(response.json()["status"])
    return statuses


def process_everything(database: Database) -> None:
    with database.connect() as conn:
        while process_pending(conn).claimed:
            pass


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("*.json")))
def test_every_example_lands_over_http_in_the_right_table(
    example: str, receiver_url: str, signer: Signer, database: Database
) -> None:
    payload = json.loads((EXAMPLES / example).read_text())
    route = "workflow" if example.startswith("workflow") else "marketplace"
    studio = f"loc-{uuid.uuid4().hex[:8]}"  # each example lands in a studio of its own
    if route == "workflow":
        payload["location"]["id"] = studio
    else:
        payload["locationId"] = studio
    assert land_all(receiver_url, signer, [(fresh(payload), route)]) == ["accepted"]
    process_everything(database)
    with database.connect() as conn:
        status, error = conn.execute(
            "SELECT status, error FROM raw.webhook_events ORDER BY id DESC LIMIT 1"
        ).fetchone()
        assert status in ("processed", "flagged"), error
        assert (status == "flagged") == ("mislabelled" in example)
        if route == "workflow":
            tables = ["ghl_contacts", "ghl_appointments"]
        else:
            prefix = next(p for p in TABLE_BY_PREFIX if example.startswith(p))
            tables = [TABLE_BY_PREFIX["InboundMessage" if "call" in example else prefix]]
        for table in tables:
            landed = conn.execute(
                f"SELECT count(*) FROM raw.{table} WHERE webhook_event_id = "
                "(SELECT max(id) FROM raw.webhook_events)"
            ).fetchone()[0]
            assert landed == 1, table


def appointment_version(appointment_id: str, version: int, updated: datetime, status: str) -> dict:
    return {
        "type": "AppointmentDelete" if status == "deleted" else "AppointmentUpdate",
        "locationId": "loc-shuffle",
        "appointment": {
            "id": appointment_id,
            "calendarId": "cal-1",
            "contactId": "c-1",
            "appointmentStatus": "cancelled" if status == "deleted" else status,
            "title": f"v{version}",
            "startTime": "2026-12-01T10:00:00+00:00",
            "endTime": "2026-12-01T11:00:00+00:00",
            "dateUpdated": updated.isoformat(),
        },
    }


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_shuffled_stream_with_duplicates_ends_in_the_newest_state(
    seed: int, receiver_url: str, signer: Signer, database: Database
) -> None:
    rng = random.Random(seed)
    start = datetime(2026, 11, 1, tzinfo=UTC)
    newest: dict[str, tuple[str, str]] = {}
    bodies = []
    for n in range(25):
        appointment_id = f"appt-{seed}-{n}"
        statuses = ["new", "confirmed", rng.choice(["showed", "noshow", "cancelled", "deleted"])]
        for version, status in enumerate(statuses):
            updated = start + timedelta(hours=n, minutes=version)
            body = orjson.dumps(
                {
                    "webhookId": f"wh-{seed}-{n}-{version}",
                    **appointment_version(appointment_id, version, updated, status),
                }
            )
            bodies.append(body)
        newest[appointment_id] = (statuses[-1], f"v{len(statuses) - 1}")
    stream = bodies + rng.sample(bodies, 20)  # duplicates
    rng.shuffle(stream)
    stamped = [fresh(orjson.loads(b)) for b in stream]
    land_all(receiver_url, signer, [(b, "marketplace") for b in stamped])
    process_everything(database)
    with database.connect() as conn:
        rows = conn.execute(
            """SELECT appointment_id, deleted_at IS NOT NULL, status, title
               FROM raw.ghl_appointments WHERE appointment_id LIKE %s""",
            (f"appt-{seed}-%",),
        ).fetchall()
    state = {a: ("deleted" if deleted else status, title) for a, deleted, status, title in rows}
    assert state == newest
