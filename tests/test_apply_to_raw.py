"""Applying parsed GHL changes to the raw tables, against the real database."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest

from tests.rls_world import World, build_world, contact
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.ghl.payloads import EntityChange, OptOut, parse_event
from trainu_dagster.ingest.apply import ApplyResult, apply_changes, record_opt_outs

EXAMPLES = Path(__file__).parent / "data" / "ghl" / "webhook-examples"
RECEIVED = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
LOCATION = "Lk7nWq3RzA9bXc2TfE5v"
CONTACT = "pQ4sNm8YtR2wVb6ZcK1x"
APPOINTMENT = "Ap9XyZ1wV3uT5sR7qP2o"
USER = "Uf3GhJ8kL2mN5pQ7rS9t"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class Landing(NamedTuple):
    table: str
    key: str | None  # None: GHL sent no messageId, so a derived one
    source_updated_at: datetime
    deleted: bool
    columns: dict[str, Any]


MAYA = {
    "first_name": "Maya",
    "last_name": "Okafor",
    "email": "maya.okafor@example.com",
    "phone": "+17185550142",
    "timezone": "America/New_York",
    "assigned_user_id": USER,
    "dnd": False,
    "date_added": utc(2026, 11, 2, 19, 3, 27, 481000),
}
CLIENT = MAYA | {"tags": ["client", "pt-pack-10"]}
SESSION = {
    "calendar_id": "Cb2DfG4hJ6kL8mN0pQ3r",
    "contact_id": CONTACT,
    "assigned_user_id": USER,
    "status": "confirmed",
    "title": "PT session - Maya Okafor",
    "start_time": utc(2026, 11, 24, 12),
    "end_time": utc(2026, 11, 24, 13),
    "date_added": utc(2026, 11, 10, 23, 22, 9, 331000),
}
SMS = {
    "conversation_id": "Cv4BnM6qW8eR0tY2uI5o",
    "contact_id": CONTACT,
    "direction": "inbound",
    "message_type": "SMS",
    "status": "delivered",
}
DEAL = {
    "contact_id": CONTACT,
    "pipeline_id": "Pl3ZxC5vB7nM9qW1eR4t",
    "pipeline_stage_id": "Sg1MnB3vC5xZ7lK9jH2f",
    "status": "open",
    "monetary_value": Decimal("599.50"),
    "assigned_to": USER,
}
TASK = {
    "contact_id": CONTACT,
    "assigned_to": "Hw7JkR2nB5vX8cZ1qL4m",
    "title": "Renewal call - Maya Okafor",
    "due_date": utc(2026, 11, 28, 22),
    "completed": False,
}
OPPORTUNITY = "Op6QwE8rT0yU2iO4pA7s"
TASK_ID = "Tk2RtY4uI6oP8aS0dF3g"

# Where each example must land, written out from its JSON (not computed by the parser).
LANDS = {
    "ContactCreate": Landing(
        "ghl_contacts",
        CONTACT,
        utc(2026, 11, 2, 19, 3, 27, 481000),  # a create is dated when it was added
        False,
        MAYA | {"tags": ["trial-week", "lead"]},
    ),
    "ContactUpdate": Landing(
        "ghl_contacts",
        CONTACT,
        utc(2026, 11, 9, 15, 41, 10, 552000),
        False,
        CLIENT | {"phone": "+17185550199"},
    ),
    "ContactTagUpdate": Landing(
        "ghl_contacts",
        CONTACT,
        utc(2026, 11, 9, 15, 42, 2, 770000),
        False,
        MAYA | {"tags": ["client", "pt-pack-10", "early-bird"]},
    ),
    "ContactDndUpdate": Landing(
        "ghl_contacts",
        CONTACT,
        utc(2026, 11, 18, 1, 7, 55, 318000),
        False,
        CLIENT | {"dnd": True},
    ),
    "ContactDelete": Landing(
        "ghl_contacts", CONTACT, utc(2026, 12, 1, 10, 12, 44, 9000), True, CLIENT
    ),
    "AppointmentCreate": Landing(
        "ghl_appointments", APPOINTMENT, utc(2026, 11, 10, 23, 22, 9, 331000), False, SESSION
    ),
    "AppointmentUpdate": Landing(
        "ghl_appointments",
        APPOINTMENT,
        utc(2026, 11, 24, 13, 5, 31, 200000),
        False,
        SESSION | {"status": "showed"},
    ),
    "AppointmentUpdate-mislabelled": Landing(
        "ghl_appointments",
        APPOINTMENT,
        utc(2026, 11, 23, 21, 14, 7, 511000),
        False,
        SESSION | {"status": "cancelled"},
    ),
    "AppointmentDelete": Landing(
        "ghl_appointments",
        "Ad3FgH5jK7lZ9xC1vB4n",
        utc(2026, 11, 12, 16, 30, 11, 874000),
        True,
        SESSION
        | {
            "start_time": utc(2026, 11, 26, 23, 30),
            "end_time": utc(2026, 11, 27, 0, 30),
            "date_added": utc(2026, 11, 11, 14, 0, 41, 502000),
        },
    ),
    "InboundMessage": Landing(
        "ghl_messages",
        None,
        utc(2026, 11, 21, 0, 47, 19, 226000),
        False,
        SMS | {"date_added": utc(2026, 11, 21, 0, 47, 18, 903000)},
    ),
    "InboundMessage-stop": Landing(
        "ghl_messages",
        "Mg7UjM5nH3bG1vF9cD2x",
        utc(2026, 11, 18, 1, 7, 54, 770000),
        False,
        SMS | {"date_added": utc(2026, 11, 18, 1, 7, 53, 412000)},
    ),
    "InboundMessage-call-mislabelled": Landing(
        "ghl_messages",
        "Cl8KiJ6uH4yG2tF0rD3e",
        utc(2026, 11, 19, 17, 2, 44, 531000),
        False,
        SMS
        | {
            "message_type": "CALL",
            "status": "completed",
            "date_added": utc(2026, 11, 19, 17, 0, 41, 250000),
        },
    ),
    "OutboundMessage": Landing(
        "ghl_messages",
        "Ms1AsD3fG5hJ7kL9zX2c",
        utc(2026, 11, 20, 22, 10, 3, 377000),
        False,
        SMS | {"direction": "outbound", "date_added": utc(2026, 11, 20, 22, 10, 2, 118000)},
    ),
    "OpportunityCreate": Landing(
        "ghl_opportunities",
        OPPORTUNITY,
        utc(2026, 11, 2, 19, 5, 51, 660000),
        False,
        DEAL | {"pipeline_stage_id": "St8YuI0oP2aS4dF6gH1j", "monetary_value": Decimal("640")},
    ),
    "OpportunityUpdate": Landing(
        "ghl_opportunities",
        OPPORTUNITY,
        utc(2026, 11, 5, 16, 44, 20, 908000),
        False,
        DEAL | {"pipeline_stage_id": "St8YuI0oP2aS4dF6gH1j"},
    ),
    "OpportunityStageUpdate": Landing(
        "ghl_opportunities", OPPORTUNITY, utc(2026, 11, 9, 15, 40, 58, 115000), False, DEAL
    ),
    "OpportunityStatusUpdate": Landing(
        "ghl_opportunities",
        OPPORTUNITY,
        utc(2026, 11, 9, 15, 41, 3, 472000),
        False,
        DEAL | {"status": "won"},
    ),
    "OpportunityDelete": Landing(
        "ghl_opportunities",
        OPPORTUNITY,
        utc(2026, 12, 1, 10, 12, 45, 330000),
        True,
        DEAL | {"status": "won"},
    ),
    "NoteCreate": Landing(
        "ghl_notes",
        "Nt5KlZ7xC9vB1nM3qW6e",
        utc(2026, 11, 24, 13, 20, 15, 402000),
        False,
        {"contact_id": CONTACT, "date_added": utc(2026, 11, 24, 13, 20, 15, 402000)},
    ),
    "TaskCreate": Landing("ghl_tasks", TASK_ID, utc(2026, 11, 24, 13, 25, 2, 117000), False, TASK),
    "TaskComplete": Landing(
        "ghl_tasks",
        TASK_ID,
        utc(2026, 11, 27, 20, 48, 36, 41000),
        False,
        TASK | {"completed": True},
    ),
}
KEYS = {
    "ghl_contacts": "contact_id",
    "ghl_appointments": "appointment_id",
    "ghl_messages": "message_id",
    "ghl_opportunities": "opportunity_id",
    "ghl_notes": "note_id",
    "ghl_tasks": "task_id",
}


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def parse(payload: dict[str, Any], route: str = "marketplace"):
    return parse_event(payload, route=route, received_at=RECEIVED)  # type: ignore[arg-type]


def rows(conn: psycopg.Connection, table: str, columns: list[str], location: str) -> list[tuple]:
    query = f"SELECT {', '.join(columns)} FROM raw.{table} WHERE location_id = %s ORDER BY 1"
    return conn.execute(query, (location,)).fetchall()


def contact_change(
    location: str, contact_id: str, at: datetime, *, deleted: bool = False, **columns: Any
) -> EntityChange:
    payload = {"id": contact_id, "locationId": location, **columns}
    return EntityChange("contact", location, contact_id, at, deleted, columns, payload)


def new_location() -> str:
    return f"loc-{uuid.uuid4().hex[:12]}"


def land_event(conn: psycopg.Connection, location: str) -> tuple[int, uuid.UUID]:
    """A stored delivery for provenance to point at."""
    correlation_id = uuid.uuid4()
    event_id = conn.execute(
        """INSERT INTO raw.webhook_events (idempotency_key, location_id, route, signature_scheme,
                                           body, payload, correlation_id)
           VALUES (%s, %s, 'marketplace', 'ed25519', '\\x7b7d', '{}', %s) RETURNING id""",
        (f"wh:{uuid.uuid4()}", location, correlation_id),
    ).fetchone()[0]
    return event_id, correlation_id


# --- every example lands where it belongs ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(LANDS))
def test_example_lands_in_its_table_with_its_typed_columns(
    admin_conn: psycopg.Connection, name: str
) -> None:
    table, key, updated, deleted, expected = LANDS[name]
    parsed = parse(example(name))
    columns = [
        KEYS[table],
        *expected,
        "source_updated_at",
        "deleted_at",
        "source",
        "webhook_event_id",
        "correlation_id",
        "payload",
    ]
    with admin_conn.transaction(force_rollback=True):
        event_id, correlation_id = land_event(admin_conn, LOCATION)
        result = apply_changes(
            admin_conn,
            parsed.changes,
            source="webhook",
            webhook_event_id=event_id,
            correlation_id=correlation_id,
        )
        [row] = rows(admin_conn, table, columns, LOCATION)
    assert result == ApplyResult(applied=len(parsed.changes), stale=0)
    stored = dict(zip(columns, row, strict=True))
    stored_key = stored.pop(KEYS[table])
    assert stored_key == key if key else stored_key.startswith("derived-")
    assert stored == expected | {
        "source_updated_at": updated,
        "deleted_at": updated if deleted else None,
        "source": "webhook",
        "webhook_event_id": event_id,
        "correlation_id": correlation_id,
        "payload": dict(parsed.changes[0].payload),
    }


def test_workflow_example_lands_a_contact_and_an_appointment(
    admin_conn: psycopg.Connection,
) -> None:
    parsed = parse(example("workflow-appointment"), "workflow")
    with admin_conn.transaction(force_rollback=True):
        result = apply_changes(admin_conn, parsed.changes, source="webhook")
        contacts = rows(
            admin_conn,
            "ghl_contacts",
            ["contact_id", "first_name", "phone", "tags", "dnd", "timezone"],
            LOCATION,
        )
        appointments = rows(
            admin_conn,
            "ghl_appointments",
            ["appointment_id", "status", "contact_id", "start_time", "end_time"],
            LOCATION,
        )
    assert result == ApplyResult(applied=2, stale=0)
    assert contacts == [(CONTACT, "Maya", "+17185550199", ["client", "pt-pack-10"], False, None)]
    assert appointments == [
        ("Wf6TgB8nH0jM2kL4pO7i", "confirmed", CONTACT, utc(2026, 11, 26, 12), utc(2026, 11, 26, 13))
    ]


def test_a_workflow_contact_never_blanks_what_it_does_not_carry(
    admin_conn: psycopg.Connection,
) -> None:
    columns = ["phone", "dnd", "timezone", "assigned_user_id", "source_updated_at"]
    with admin_conn.transaction(force_rollback=True):
        apply_changes(admin_conn, parse(example("ContactDndUpdate")).changes, source="webhook")
        workflow = parse(example("workflow-appointment"), "workflow")
        apply_changes(admin_conn, workflow.changes, source="webhook")
        stored = rows(admin_conn, "ghl_contacts", columns, LOCATION)
    newest = utc(2026, 11, 21, 1, 2, 18, 331000)
    assert stored == [("+17185550199", True, "America/New_York", USER, newest)]


def test_an_appointment_ending_before_it_starts_is_refused(
    admin_conn: psycopg.Connection,
) -> None:
    payload = example("AppointmentUpdate")
    payload["appointment"]["endTime"] = "2026-11-24T06:00:00-05:00"
    with pytest.raises(psycopg.errors.CheckViolation), admin_conn.transaction():
        apply_changes(admin_conn, parse(payload).changes, source="webhook")


# --- last write wins -----------------------------------------------------------------------------


def test_the_same_change_five_times_is_one_row_applied_once(
    admin_conn: psycopg.Connection,
) -> None:
    location = new_location()
    change = contact_change(location, "c1", T0, first_name="Ann", tags=["a"], dnd=False)
    results = [apply_changes(admin_conn, [change], source="webhook") for _ in range(5)]
    assert results == [ApplyResult(1, 0)] + [ApplyResult(0, 1)] * 4
    assert apply_changes(admin_conn, [change] * 5, source="pull") == ApplyResult(0, 5)
    columns = ["contact_id", "first_name", "source"]
    assert rows(admin_conn, "ghl_contacts", columns, location) == [("c1", "Ann", "webhook")]


def test_duplicates_within_one_batch_land_once(admin_conn: psycopg.Connection) -> None:
    change = contact_change(new_location(), "c1", T0, first_name="Ann")
    assert apply_changes(admin_conn, [change] * 3, source="webhook") == ApplyResult(1, 2)


def test_versions_within_one_batch_keep_the_newest_whatever_their_order(
    admin_conn: psycopg.Connection,
) -> None:
    location = new_location()
    versions = [
        contact_change(location, "c1", T0 + timedelta(minutes=n), first_name=f"v{n}")
        for n in range(5)
    ]
    random.Random(7).shuffle(versions)
    assert apply_changes(admin_conn, versions, source="pull") == ApplyResult(1, 4)
    columns = ["first_name", "source_updated_at"]
    expected = [("v4", T0 + timedelta(minutes=4))]
    assert rows(admin_conn, "ghl_contacts", columns, location) == expected


def test_a_late_older_update_never_overwrites_newer_state(admin_conn: psycopg.Connection) -> None:
    location = new_location()
    later = T0 + timedelta(minutes=5)
    newer = contact_change(location, "c1", later, first_name="New")
    older = contact_change(location, "c1", T0, first_name="Old")
    assert apply_changes(admin_conn, [newer], source="webhook") == ApplyResult(1, 0)
    assert apply_changes(admin_conn, [older], source="pull") == ApplyResult(0, 1)
    columns = ["first_name", "source_updated_at", "source"]
    assert rows(admin_conn, "ghl_contacts", columns, location) == [("New", later, "webhook")]


def test_delete_is_a_tombstone_and_only_a_newer_update_resurrects(
    admin_conn: psycopg.Connection,
) -> None:
    location = new_location()
    hour = timedelta(hours=1)

    def apply(at: datetime, first_name: str, deleted: bool = False) -> ApplyResult:
        change = contact_change(location, "c1", at, deleted=deleted, first_name=first_name)
        return apply_changes(admin_conn, [change], source="webhook")

    def state() -> list[tuple]:
        return rows(admin_conn, "ghl_contacts", ["first_name", "deleted_at"], location)

    apply(T0, "Ann")
    assert apply(T0 + hour, "Ann", deleted=True) == ApplyResult(1, 0)
    assert state() == [("Ann", T0 + hour)]  # the row stays, marked deleted
    assert apply(T0 + hour / 2, "Late") == ApplyResult(0, 1)
    assert state() == [("Ann", T0 + hour)]
    assert apply(T0 + 2 * hour, "Back") == ApplyResult(1, 0)
    assert state() == [("Back", None)]


def test_equal_times_resolve_the_same_way_in_either_order(admin_conn: psycopg.Connection) -> None:
    results = []
    for order in (1, -1):
        location = new_location()
        update = contact_change(location, "c1", T0, first_name="Updated")
        delete = contact_change(location, "c1", T0, deleted=True, first_name="Deleted")
        apply_changes(admin_conn, [update, delete][::order], source="webhook")
        results.append(rows(admin_conn, "ghl_contacts", ["first_name", "deleted_at"], location))
    assert results[0] == results[1]  # one instant, two values: the same one wins either way
    assert results[0][0][1] == T0  # and at one instant, the delete wins


def test_a_partial_change_never_blanks_what_it_does_not_carry(
    admin_conn: psycopg.Connection,
) -> None:
    for first_full in (True, False):  # the partial one may well land first
        location = new_location()
        full = contact_change(location, "c1", T0, first_name="Ann", email="ann@x.io", tags=["vip"])
        dnd = contact_change(location, "c1", T0 + timedelta(hours=1), dnd=True)
        for change in [full, dnd] if first_full else [dnd, full]:
            apply_changes(admin_conn, [change], source="webhook")
        columns = ["first_name", "email", "tags", "dnd", "source_updated_at"]
        assert rows(admin_conn, "ghl_contacts", columns, location) == [
            ("Ann", "ann@x.io", ["vip"], True, T0 + timedelta(hours=1))
        ]


def test_an_undated_change_only_fills_what_nobody_has_set(
    admin_conn: psycopg.Connection,
) -> None:
    location = new_location()
    dated = contact_change(location, "c1", T0, first_name="Ann", phone=None)
    undated = contact_change(location, "c1", None, first_name="Annie", phone="+1555", email="e@x")
    again = contact_change(location, "c1", None, email="other@x")
    for change in (undated, dated, again):
        apply_changes(admin_conn, [change], source="webhook")
    columns = ["first_name", "phone", "email", "source_updated_at"]
    # the dated change wins what it carried (a phone it cleared included); the undated one
    # filled the email, which a later undated delivery does not overwrite
    assert rows(admin_conn, "ghl_contacts", columns, location) == [("Ann", None, "e@x", T0)]
    later = contact_change(location, "c1", T0 + WEEK, email="new@x")
    apply_changes(admin_conn, [later], source="pull")  # pulls reconcile what undated ones set
    assert rows(admin_conn, "ghl_contacts", ["email"], location) == [("new@x",)]


def test_a_pull_and_a_webhook_share_one_row(admin_conn: psycopg.Connection) -> None:
    location = new_location()
    event_id, correlation_id = land_event(admin_conn, location)
    hooked = contact_change(location, "c1", T0, first_name="Hook")
    apply_changes(
        admin_conn,
        [hooked],
        source="webhook",
        webhook_event_id=event_id,
        correlation_id=correlation_id,
    )
    pulled = contact_change(location, "c1", T0 + timedelta(seconds=1), first_name="Pulled")
    assert apply_changes(admin_conn, [pulled], source="pull") == ApplyResult(1, 0)
    columns = ["first_name", "source", "webhook_event_id", "correlation_id"]
    assert rows(admin_conn, "ghl_contacts", columns, location) == [("Pulled", "pull", None, None)]


def test_a_change_with_a_column_its_table_lacks_is_refused(admin_conn: psycopg.Connection) -> None:
    change = contact_change(new_location(), "c1", T0, pipeline_id="p1")
    with pytest.raises(ValueError, match="unknown columns"):
        apply_changes(admin_conn, [change], source="webhook")


def test_the_payload_is_stored_as_received(admin_conn: psycopg.Connection) -> None:
    location = new_location()
    payload = {"id": "c1", "customFields": [{"id": "f1", "value": ["a", 1]}], "name": "Zoë"}
    change = EntityChange("contact", location, "c1", T0, False, {"first_name": "Zoë"}, payload)
    apply_changes(admin_conn, [change], source="pull")
    assert rows(admin_conn, "ghl_contacts", ["payload", "first_name"], location) == [
        (payload, "Zoë")
    ]


# --- opt-outs ----------------------------------------------------------------------------------


def opt_outs(conn: psycopg.Connection, location: str) -> set[tuple]:
    columns = ["reason", "channel", "occurred_at", "contact_id"]
    return set(rows(conn, "ghl_opt_outs", columns, location))


def test_dnd_is_recorded_once_however_often_it_is_replayed(admin_conn: psycopg.Connection) -> None:
    parsed = parse(example("ContactDndUpdate"))
    with admin_conn.transaction(force_rollback=True):
        event_id, correlation_id = land_event(admin_conn, LOCATION)
        counts = [
            record_opt_outs(
                admin_conn,
                parsed.opt_outs,
                webhook_event_id=event_id,
                correlation_id=correlation_id,
            )
            for _ in range(3)
        ]
        counts.append(record_opt_outs(admin_conn, parse(example("ContactDndUpdate")).opt_outs))
        stored = opt_outs(admin_conn, LOCATION)
        provenance = rows(
            admin_conn, "ghl_opt_outs", ["webhook_event_id", "correlation_id"], LOCATION
        )
    at = utc(2026, 11, 18, 1, 7, 55, 318000)
    assert counts == [2, 0, 0, 0]
    assert stored == {("dnd", None, at, CONTACT), ("dnd", "SMS", at, CONTACT)}
    assert set(provenance) == {(event_id, correlation_id)}


@pytest.mark.parametrize(
    ("body", "recorded"),
    [
        ("STOP", True),
        ("stop.", True),
        ("Unsubscribe", True),
        ("cancel", True),  # the whole reply: carrier standard
        ("cancel my 6pm please", False),  # a session, not consent
        ("Stop by at 5?", False),
    ],
)
def test_stop_replies_are_recorded_and_a_word_in_passing_is_not(
    admin_conn: psycopg.Connection, body: str, recorded: bool
) -> None:
    location = new_location()
    payload = example("InboundMessage-stop") | {"body": body, "locationId": location}
    parsed = parse(payload)
    apply_changes(admin_conn, parsed.changes, source="webhook")
    assert record_opt_outs(admin_conn, parsed.opt_outs) == int(recorded)
    assert record_opt_outs(admin_conn, parse(payload).opt_outs) == 0
    expected = {("stop_reply", "SMS", utc(2026, 11, 18, 1, 7, 53, 412000), CONTACT)}
    assert opt_outs(admin_conn, location) == (expected if recorded else set())


def test_recording_no_opt_outs_is_a_no_op(admin_conn: psycopg.Connection) -> None:
    assert record_opt_outs(admin_conn, []) == 0


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE raw.ghl_opt_outs SET channel = 'SMS'",
        "DELETE FROM raw.ghl_opt_outs",
        "TRUNCATE raw.ghl_opt_outs",
    ],
)
def test_opt_outs_cannot_be_rewritten_or_removed(
    admin_conn: psycopg.Connection, statement: str
) -> None:
    location = new_location()
    record_opt_outs(admin_conn, [OptOut(location, "c1", "dnd", None, T0)])
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"),
        admin_conn.transaction(),
    ):
        admin_conn.execute(statement)
    assert opt_outs(admin_conn, location) == {("dnd", None, T0, "c1")}


def test_an_unknown_opt_out_reason_is_refused(admin_conn: psycopg.Connection) -> None:
    refused = OptOut(new_location(), "c1", "cancel", None, T0)  # type: ignore[arg-type]
    with pytest.raises(psycopg.errors.CheckViolation), admin_conn.transaction():
        record_opt_outs(admin_conn, [refused])


# --- who can read the new tables -----------------------------------------------------------------

NEW_TABLES = ["raw.ghl_notes", "raw.ghl_tasks", "raw.ghl_opt_outs"]


@pytest.fixture(scope="module")
def world(database: Database) -> World:
    """The RLS test world, plus a note, a task and an opt-out for each client."""
    world = build_world(database)
    with database.connect() as conn:
        for client, location in {"a1": "L1", "a2": "L1", "b1": "L1", "c1": "L2"}.items():
            who = contact(client)
            note = {"id": f"note-{client}", "contactId": who}
            task = {"id": f"task-{client}", "contactId": who, "title": "Call"}
            changes = [
                EntityChange("note", location, note["id"], T0, False, {"contact_id": who}, note),
                EntityChange("task", location, task["id"], T0, False, {"contact_id": who}, task),
            ]
            apply_changes(conn, changes, source="pull")
            record_opt_outs(conn, [OptOut(location, who, "stop_reply", "SMS", T0)])
    return world


@pytest.fixture
def app_conn(database: Database) -> Iterator[psycopg.Connection]:
    with database.connect(role=APP_ROLE) as conn:
        yield conn


@pytest.mark.parametrize(
    ("who", "clients"),
    [
        ("owner-L1", {"a1", "a2", "b1"}),
        ("owner-L2", {"c1"}),
        ("trainer-A", {"a1", "a2"}),
        ("trainer-B", {"b1"}),
        ("client-a1", set()),
    ],
)
def test_notes_tasks_and_opt_outs_follow_the_contact_scope(
    world: World, app_conn: psycopg.Connection, who: str, clients: set[str]
) -> None:
    with accounts.as_user(app_conn, world.token(who)) as conn:
        for table in NEW_TABLES:
            seen = {r[0] for r in conn.execute(f"SELECT contact_id FROM {table}")}
            assert seen == {contact(c) for c in clients}, table


def test_without_a_session_the_new_tables_show_nothing(
    world: World, app_conn: psycopg.Connection
) -> None:
    for table in NEW_TABLES:
        assert app_conn.execute(f"SELECT count(*) FROM {table}").fetchone() == (0,)


def test_the_app_role_cannot_write_opt_outs(world: World, app_conn: psycopg.Connection) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute(
            """INSERT INTO raw.ghl_opt_outs (location_id, contact_id, reason, occurred_at)
               VALUES ('L1', %s, 'dnd', now())""",
            (contact("a1"),),
        )


def test_every_start_time_an_appointment_was_seen_at_is_logged_once(
    admin_conn: psycopg.Connection,
) -> None:
    location = new_location()
    first, moved = T0 + timedelta(days=3), T0 + timedelta(days=4)

    def version(at: datetime, start: datetime) -> EntityChange:
        columns = {"start_time": start, "end_time": start + timedelta(hours=1), "status": "new"}
        return EntityChange("appointment", location, "a1", at, False, columns, {"id": "a1"})

    newer, older = version(T0 + timedelta(hours=2), moved), version(T0, first)
    for batch in ([newer], [older], [newer, older, older]):  # the older one arrives late
        apply_changes(admin_conn, batch, source="webhook")
    logged = admin_conn.execute(
        """SELECT start_time FROM raw.ghl_appointment_start_times
           WHERE location_id = %s ORDER BY 1""",
        (location,),
    ).fetchall()
    assert logged == [(first,), (moved,)]
    assert rows(admin_conn, "ghl_appointments", ["start_time"], location) == [(moved,)]
