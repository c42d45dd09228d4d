"""A poisoned event: dead-letter queue, retries with backoff, dead, then repaired once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.ingest_helpers import land
from trainu_dagster.db.server import Database
from trainu_dagster.ingest import dlq
from trainu_dagster.ingest.process import process_pending
from trainu_dagster.ingest.retry import retry_due

TRAINU = str(Path(sys.executable).parent / "trainu")
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def appointment(appointment_id: str, start: str, end: str) -> dict:
    return {
        "type": "AppointmentUpdate",
        "locationId": "loc-1",
        "appointment": {
            "id": appointment_id,
            "calendarId": "cal-1",
            "contactId": "c-1",
            "appointmentStatus": "confirmed",
            "startTime": start,
            "endTime": end,
            "dateUpdated": "2026-11-20T09:00:00+00:00",
        },
    }


POISON = appointment("appt-poison", "2026-11-25T10:00:00+00:00", "2026-11-25T09:00:00+00:00")
FIXED = appointment("appt-poison", "2026-11-25T09:00:00+00:00", "2026-11-25T10:00:00+00:00")


def trainu(database: Database, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINU_DATABASE_URL": database.url()}
    return subprocess.run([TRAINU, *args], env=env, capture_output=True, text=True, timeout=120)


def events(conn: psycopg.Connection, kind: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM app.events WHERE event_type = %s", (kind,)
    ).fetchone()[0]


def test_poisoned_event_retries_with_backoff_dies_and_is_repaired_once(
    database: Database, tmp_path: Path
) -> None:
    with database.connect() as conn:
        good = land(
            conn, appointment("appt-good", "2026-11-25T08:00:00+00:00", "2026-11-25T09:00:00+00:00")
        )
        bad = land(conn, POISON)
        summary = process_pending(conn, now=T0)  # one batch: the culprit is found alone
        conn.commit()
        assert (summary.processed, summary.failed) == (1, 1)
        statuses = dict(conn.execute("SELECT id, status FROM raw.webhook_events").fetchall())
        assert statuses == {good: "processed", bad: "failed"}
        [item] = dlq.list_items(conn)
        assert (item.webhook_event_id, item.status, item.attempts) == (bad, "pending", 1)
        assert item.error_class == "CheckViolation"

        # Backoff: each retry is scheduled later than the last, within the jitter bounds.
        now, delays = T0, []
        while item.status in ("pending", "retrying"):
            assert item.next_attempt_at is not None
            assert retry_due(conn, now=item.next_attempt_at - timedelta(seconds=1)) == []
            now = item.next_attempt_at
            reports = retry_due(conn, now=now)
            conn.commit()
            assert [r.item_id for r in reports] == [item.id]
            item = dlq.get(conn, item.id)
            if item.next_attempt_at:
                delays.append((item.attempts, item.next_attempt_at - now))
        assert item.status == "dead" and item.attempts == item.max_attempts
        for attempts, delay in delays:
            ceiling = min(dlq.MAX_DELAY, dlq.BASE_DELAY * 2 ** (attempts - 1))
            assert ceiling / 2 <= delay <= ceiling
        assert retry_due(conn, now=now + timedelta(days=1)) == []  # dead items wait for a human
        assert events(conn, "sync_dead") == 1
        assert events(conn, "sync_retry") == item.max_attempts - 1

    listed = trainu(database, "dlq", "list", "--status", "dead")
    assert listed.returncode == 0 and f"{item.id}\tdead" in listed.stdout
    shown = trainu(database, "dlq", "show", str(item.id))
    assert "CheckViolation" in shown.stdout and "appt-poison" in shown.stdout

    still_broken = trainu(database, "dlq", "repair", str(item.id))
    assert still_broken.returncode == 1 and "still fails" in still_broken.stderr

    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(FIXED))
    repaired = trainu(database, "dlq", "repair", str(item.id), "--payload", str(fixed))
    assert repaired.returncode == 0, repaired.stderr
    assert f"item {item.id}: repaired" in repaired.stdout
    again = trainu(database, "dlq", "repair", str(item.id), "--payload", str(fixed))
    assert again.returncode == 1 and "already repaired" in again.stderr

    with database.connect() as conn:
        applied = conn.execute(
            """SELECT start_time < end_time, webhook_event_id FROM raw.ghl_appointments
               WHERE appointment_id = 'appt-poison'"""
        ).fetchall()
        assert applied == [(True, bad)]
        assert conn.execute(
            "SELECT status FROM raw.webhook_events WHERE id = %s", (bad,)
        ).fetchone() == ("processed",)
        item = dlq.get(conn, item.id)
        assert (item.status, item.resolved_by.startswith("cli:")) == ("repaired", True)
        assert item.payload_ref["repaired_payload"] == FIXED
        raw_body = conn.execute(
            "SELECT payload FROM raw.webhook_events WHERE id = %s", (bad,)
        ).fetchone()[0]
        assert raw_body == POISON  # the delivery as received is never rewritten


@pytest.mark.parametrize(
    "payload",
    [
        {"locationId": "loc-1", "foo": 1},
        {"type": "ContactCreate", "id": "no-location"},
    ],
)
def test_unparseable_events_are_kept_and_queued_not_dropped(
    database: Database, payload: dict
) -> None:
    with database.connect() as conn:
        event_id = land(conn, payload)
        summary = process_pending(conn)
        conn.commit()
        assert summary.failed == 1
        status, error = conn.execute(
            "SELECT status, error FROM raw.webhook_events WHERE id = %s", (event_id,)
        ).fetchone()
        assert status == "failed" and "UnparseableEvent" in error
        items = [i for i in dlq.list_items(conn) if i.webhook_event_id == event_id]
        assert [(i.status, i.error_class) for i in items] == [("pending", "UnparseableEvent")]

    discarded = trainu(database, "dlq", "discard", str(items[0].id), "--reason", "test junk")
    assert discarded.returncode == 0, discarded.stderr
    with database.connect() as conn:
        assert dlq.get(conn, items[0].id).status == "discarded"


def test_an_unknown_event_type_is_kept_counted_and_reprocessed_once_a_parser_exists(
    database: Database,
) -> None:
    stats = {"type": "LCEmailStats", "locationId": "loc-1", "webhookPayload": {"event": "open"}}
    contact = {"type": "ContactUpdate", "locationId": "loc-1", "id": "c-later",
               "firstName": "Lou", "timestamp": "2026-11-24T12:00:00+00:00"}  # fmt: skip
    with database.connect() as conn:
        unknown_id = land(conn, stats)
        # as an older TrainU without a contact parser would have left it
        later_id = land(conn, contact)
        conn.execute("UPDATE raw.webhook_events SET status = 'unknown' WHERE id = %s", (later_id,))
        summary = process_pending(conn)
        conn.commit()
        assert (summary.claimed, summary.unknown, summary.failed) == (1, 1, 0)
        status, error = conn.execute(
            "SELECT status, error FROM raw.webhook_events WHERE id = %s", (unknown_id,)
        ).fetchone()
        assert status == "unknown" and "unknown event type 'LCEmailStats'" in error
        assert not [i for i in dlq.list_items(conn) if i.webhook_event_id == unknown_id]

    counted = trainu(database, "webhooks", "status")
    assert counted.returncode == 0
    assert "unknown\tLCEmailStats\t1" in counted.stdout
    assert "unknown\tContactUpdate\t1" in counted.stdout

    reprocessed = trainu(database, "webhooks", "reprocess", "--type", "ContactUpdate")
    assert reprocessed.returncode == 0, reprocessed.stderr
    assert "1 ContactUpdate deliveries: 1 applied" in reprocessed.stdout
    still = trainu(database, "webhooks", "reprocess", "--type", "LCEmailStats")
    assert "1 still unknown" in still.stdout
    nothing = trainu(database, "webhooks", "reprocess", "--type", "Nope")
    assert nothing.returncode == 1 and "no deliveries of type 'Nope'" in nothing.stderr
    with database.connect() as conn:
        assert conn.execute(
            "SELECT first_name FROM raw.ghl_contacts WHERE contact_id = 'c-later'"
        ).fetchone() == ("Lou",)
        assert conn.execute(
            "SELECT status FROM raw.webhook_events WHERE id = %s", (later_id,)
        ).fetchone() == ("processed",)
