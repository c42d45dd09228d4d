"""Parsing GHL webhook bodies: GHL's schemas, GHL's mistakes, and the landing envelope."""

from __future__ import annotations

import copy
import json
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest

from trainu_dagster.ghl.payloads import (
    UnparseableEvent,
    envelope,
    parse_event,
)

DATA = Path(__file__).parent / "data" / "ghl"
SCHEMAS = {
    p.name.removesuffix(".schema.json"): p for p in (DATA / "webhook-schemas").glob("*.json")
}
EXAMPLES = {p.stem: p for p in (DATA / "webhook-examples").glob("*.json")}
MARKETPLACE_EXAMPLES = sorted(name for name in EXAMPLES if name != "workflow-appointment")
RECEIVED = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
LOCATION = "Lk7nWq3RzA9bXc2TfE5v"
CONTACT = "pQ4sNm8YtR2wVb6ZcK1x"

# example -> (entity, what TrainU treats it as, flagged?)
CLASSIFIED = {
    "AppointmentCreate": ("appointment", "AppointmentCreate", False),
    "AppointmentUpdate": ("appointment", "AppointmentUpdate", False),
    "AppointmentDelete": ("appointment", "AppointmentDelete", False),
    "AppointmentUpdate-mislabelled": ("appointment", "AppointmentUpdate", True),
    "ContactCreate": ("contact", "ContactCreate", False),
    "ContactUpdate": ("contact", "ContactUpdate", False),
    "ContactDelete": ("contact", "ContactDelete", False),
    "ContactDndUpdate": ("contact", "ContactDndUpdate", False),
    "ContactTagUpdate": ("contact", "ContactTagUpdate", False),
    "InboundMessage": ("message", "InboundMessage", False),
    "InboundMessage-stop": ("message", "InboundMessage", False),
    "InboundMessage-call-mislabelled": ("message", "InboundMessage", True),
    "OutboundMessage": ("message", "OutboundMessage", False),
    "NoteCreate": ("note", "NoteCreate", False),
    "OpportunityCreate": ("opportunity", "OpportunityCreate", False),
    "OpportunityUpdate": ("opportunity", "OpportunityUpdate", False),
    "OpportunityDelete": ("opportunity", "OpportunityDelete", False),
    "OpportunityStageUpdate": ("opportunity", "OpportunityStageUpdate", False),
    "OpportunityStatusUpdate": ("opportunity", "OpportunityStatusUpdate", False),
    "TaskCreate": ("task", "TaskCreate", False),
    "TaskComplete": ("task", "TaskComplete", False),
}
ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}T")


def example(name: str) -> dict[str, Any]:
    return json.loads(EXAMPLES[name].read_text())


def parse(payload: dict[str, Any], route: str = "marketplace"):
    return parse_event(payload, route=route, received_at=RECEIVED)  # type: ignore[arg-type]


def strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return [value] if isinstance(value, str) else []


# --- the examples themselves ---------------------------------------------------------------


def test_every_published_schema_has_an_example_and_every_example_is_classified() -> None:
    assert len(SCHEMAS) == 18
    assert set(SCHEMAS) <= set(EXAMPLES)
    assert set(MARKETPLACE_EXAMPLES) == set(CLASSIFIED)


@pytest.mark.parametrize("name", MARKETPLACE_EXAMPLES)
def test_example_validates_against_ghls_schema_and_looks_like_a_signed_delivery(name: str) -> None:
    payload = example(name)
    jsonschema.validate(payload, json.loads(SCHEMAS[name.split("-")[0]].read_text()))
    assert uuid.UUID(payload["webhookId"]).version == 4
    assert payload["locationId"] == LOCATION
    for value in strings(payload):
        if ISO_DATE.match(value):
            assert datetime.fromisoformat(value).tzinfo is not None, value


@pytest.mark.parametrize("name", MARKETPLACE_EXAMPLES)
def test_example_parses_to_its_entity(name: str) -> None:
    payload = example(name)
    entity, event_type, flagged = CLASSIFIED[name]
    parsed = parse(payload)
    assert (parsed.event_type, parsed.declared_type) == (event_type, payload["type"])
    assert (parsed.flag is not None) == flagged
    change, *derived = parsed.changes
    # a STOP reply also puts its contact under DND, as of the reply
    assert [(c.entity, dict(c.columns)) for c in derived] == (
        [("contact", {"dnd": True})] if name == "InboundMessage-stop" else []
    )
    assert (change.entity, change.location_id) == (entity, LOCATION)
    assert change.deleted == name.endswith("Delete")
    assert change.source_updated_at.tzinfo is not None
    assert change.source_updated_at.utcoffset() == timedelta(0)
    assert "webhookId" not in change.payload and "timestamp" not in change.payload


def test_workflow_example_is_a_contact_and_an_appointment_with_a_normalised_status() -> None:
    payload = example("workflow-appointment")
    parsed = parse(payload, "workflow")
    assert (parsed.event_type, parsed.declared_type, parsed.flag) == ("Workflow", None, None)
    contact, appointment = parsed.changes
    stamp = datetime(2026, 11, 21, 1, 2, 18, 331000, tzinfo=UTC)  # customData.timestamp
    assert (contact.entity, contact.location_id, contact.entity_id) == (
        "contact",
        LOCATION,
        CONTACT,
    )
    assert contact.source_updated_at == stamp
    assert dict(contact.columns) == {
        "first_name": "Maya",
        "last_name": "Okafor",
        "email": "maya.okafor@example.com",
        "phone": "+17185550199",
        "tags": ["client", "pt-pack-10"],
    }
    assert (appointment.entity, appointment.entity_id) == ("appointment", "Wf6TgB8nH0jM2kL4pO7i")
    assert appointment.source_updated_at == stamp
    assert dict(appointment.columns) == {
        "status": "confirmed",
        "calendar_id": "Cb2DfG4hJ6kL8mN0pQ3r",
        "title": "PT session - Maya Okafor",
        "contact_id": CONTACT,
        "start_time": datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
        "end_time": datetime(2026, 11, 26, 13, 0, tzinfo=UTC),
    }


# --- GHL's mistakes ------------------------------------------------------------------------


def test_update_labelled_as_create_is_treated_as_an_update_and_flagged() -> None:
    parsed = parse(example("AppointmentUpdate-mislabelled"))
    assert (parsed.event_type, parsed.declared_type) == ("AppointmentUpdate", "AppointmentCreate")
    assert "declared AppointmentCreate" in parsed.flag
    assert parsed.changes[0].columns["status"] == "cancelled"


def test_inbound_call_labelled_outbound_follows_its_direction_and_is_flagged() -> None:
    parsed = parse(example("InboundMessage-call-mislabelled"))
    assert (parsed.event_type, parsed.declared_type) == ("InboundMessage", "OutboundMessage")
    assert parsed.flag == "declared OutboundMessage but direction is inbound"
    change = parsed.changes[0]
    assert (change.entity_id, change.columns["direction"], change.columns["message_type"]) == (
        "Cl8KiJ6uH4yG2tF0rD3e",
        "inbound",
        "CALL",
    )


@pytest.mark.parametrize(
    ("declared", "expected_flag"),
    [
        (None, "no event type"),
        ("ContactUpdate", "declared type ContactUpdate does not match the payload's shape"),
    ],
)
def test_a_recognisable_shape_is_classified_whatever_the_type_says(
    declared: str | None, expected_flag: str
) -> None:
    payload = example("AppointmentUpdate")
    payload["type"] = declared
    parsed = parse(payload)
    assert parsed.event_type == "AppointmentUpdate"
    assert parsed.flag.startswith(expected_flag)
    assert [c.entity for c in parsed.changes] == ["appointment"]
    assert parsed.changes[0].columns["status"] == "showed"


@pytest.mark.parametrize(
    ("name", "declared", "entity", "event_type"),
    [
        ("InboundMessage", "NoteCreate", "message", "InboundMessage"),
        ("OpportunityUpdate", "ContactUpdate", "opportunity", "OpportunityUpdate"),
        ("TaskCreate", "ContactCreate", "task", "TaskCreate"),
        ("NoteCreate", "ContactCreate", "note", "NoteCreate"),
        ("ContactUpdate", "TaskCreate", "contact", "ContactUpdate"),
    ],
)
def test_each_shape_overrides_a_wrong_type(
    name: str, declared: str, entity: str, event_type: str
) -> None:
    payload = example(name)
    payload["type"] = declared
    parsed = parse(payload)
    assert (parsed.changes[0].entity, parsed.event_type) == (entity, event_type)
    assert parsed.flag is not None and declared in parsed.flag


def test_a_task_without_a_due_date_is_still_a_task() -> None:
    payload = example("TaskCreate")
    del payload["dueDate"]
    parsed = parse(payload)
    assert (parsed.changes[0].entity, parsed.flag) == ("task", None)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (["not", "an", "object"], "not a JSON object"),
        ({"type": "ContactCreate", "id": "c1", "firstName": "Jo"}, "no locationId"),
        ({"locationId": LOCATION}, "no event type and an unrecognised payload shape"),
        ({"type": "AppointmentUpdate", "locationId": LOCATION, "id": "x"}, "no appointment"),
        ({"type": "ContactDelete", "locationId": LOCATION, "firstName": "Jo"}, "without an id"),
        (
            {"type": "InboundMessage", "locationId": LOCATION, "direction": "inbound"},
            "no messageId, conversationId or contactId",
        ),
    ],
)
def test_what_cannot_be_classified_raises_with_a_clear_message(payload: Any, message: str) -> None:
    with pytest.raises(UnparseableEvent, match=message):
        parse(payload)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"contact_id": CONTACT}, "without location.id or locationId"),
        (
            {"location": {"id": LOCATION}, "workflow": {"id": "w1"}},
            "without contact_id or calendar",
        ),
    ],
)
def test_unusable_workflow_bodies_raise(payload: dict[str, Any], message: str) -> None:
    with pytest.raises(UnparseableEvent, match=message):
        parse(payload, "workflow")


# --- fields --------------------------------------------------------------------------------


def test_source_time_is_date_updated_then_delivery_timestamp_else_undated() -> None:
    contact = example("ContactUpdate")  # GHL's contact events carry no dateUpdated
    assert parse(contact).changes[0].source_updated_at == datetime(
        2026, 11, 9, 15, 41, 10, 552000, tzinfo=UTC
    )
    del contact["timestamp"]
    assert parse(contact).changes[0].source_updated_at is None  # fills gaps only
    contact["dateUpdated"] = "2026-11-09T10:41:00+05:30"
    assert parse(contact).changes[0].source_updated_at == datetime(2026, 11, 9, 5, 11, tzinfo=UTC)


def test_a_create_is_dated_when_it_was_added_not_when_it_was_delivered() -> None:
    created = parse(example("ContactCreate")).changes[0]
    assert created.source_updated_at == datetime(2026, 11, 2, 19, 3, 27, 481000, tzinfo=UTC)
    update = example("ContactCreate") | {"type": "ContactUpdate"}
    assert parse(update).changes[0].source_updated_at == datetime(
        2026, 11, 2, 19, 3, 28, 104000, tzinfo=UTC
    )


def test_a_message_status_update_is_dated_by_its_delivery_not_by_when_it_was_sent() -> None:
    sent = example("OutboundMessage")
    delivered = sent | {"status": "delivered", "timestamp": "2026-11-20T22:11:00+00:00"}
    times = [parse(p).changes[0].source_updated_at for p in (sent, delivered)]
    assert times[0] < times[1]


def test_workflow_time_is_custom_data_then_body_timestamp_else_undated() -> None:
    payload = example("workflow-appointment")
    payload["timestamp"] = "2026-11-21T01:02:19.000+00:00"
    assert parse(payload, "workflow").changes[0].source_updated_at.second == 18
    del payload["customData"]["timestamp"]
    assert parse(payload, "workflow").changes[0].source_updated_at.second == 19
    del payload["timestamp"]
    assert {c.source_updated_at for c in parse(payload, "workflow").changes} == {None}


def test_workflow_times_without_offset_are_in_the_calendars_timezone() -> None:
    payload = example("workflow-appointment")
    payload["calendar"] |= {
        "startTime": "2026-07-02T07:00:00",
        "endTime": "2026-07-02T08:00:00",
        "appoinmentStatus": None,
        "status": "No_Show",
    }
    appointment = parse(payload, "workflow").changes[1]
    assert appointment.columns["start_time"] == datetime(2026, 7, 2, 11, 0, tzinfo=UTC)  # EDT
    assert appointment.columns["status"] == "noshow"


@pytest.mark.parametrize(
    ("start", "end", "expected_start"),
    [
        # GHL's merge-field form; the weekday is GHL's own (Nov 30th 2026 is a Monday)
        ("Sun, Nov 30th, 2026 | 6:30 am", "Sun, Nov 30th, 2026 | 7:30 am", (11, 30)),
        ("Monday, November 30, 2026 6:30 PM", "Monday, November 30, 2026 7:30 PM", (23, 30)),
        ("Nov 30 2026 18:30", "Nov 30 2026 19:30", (23, 30)),
    ],
)
def test_human_readable_workflow_times_are_read_in_the_calendars_timezone(
    start: str, end: str, expected_start: tuple[int, int]
) -> None:
    payload = example("workflow-appointment")
    payload["calendar"] |= {"startTime": start, "endTime": end}
    parsed = parse(payload, "workflow")
    appointment = parsed.changes[1]
    assert appointment.columns["start_time"] == datetime(2026, 11, 30, *expected_start, tzinfo=UTC)
    assert appointment.columns["end_time"] - appointment.columns["start_time"] == timedelta(hours=1)
    assert parsed.flag is None


def test_without_a_calendar_timezone_local_times_are_in_the_studios() -> None:
    payload = example("workflow-appointment")
    del payload["calendar"]["selectedTimezone"]
    payload["calendar"] |= {"startTime": "Sun, Nov 30th, 2026 | 6:30 am", "endTime": ""}
    london = parse_event(
        payload, route="workflow", received_at=RECEIVED, timezone=ZoneInfo("Europe/London")
    )
    assert london.changes[1].columns["start_time"] == datetime(2026, 11, 30, 6, 30, tzinfo=UTC)
    assert london.changes[1].columns["end_time"] is None  # present but empty: cleared


@pytest.mark.parametrize("unreadable", ["next Tuesday-ish", "Nov 30th | 6:30 am", "30:99"])
def test_a_field_that_cannot_be_read_is_skipped_and_the_delivery_flagged(unreadable: str) -> None:
    payload = example("workflow-appointment")
    payload["calendar"]["startTime"] = unreadable
    parsed = parse(payload, "workflow")
    contact, appointment = parsed.changes  # the rest of the delivery is applied
    assert "start_time" not in appointment.columns  # so the stored start stays as it was
    assert appointment.columns["end_time"] == datetime(2026, 11, 26, 13, 0, tzinfo=UTC)
    assert appointment.columns["status"] == "confirmed"
    assert contact.columns["phone"] == "+17185550199"
    assert parsed.flag == f"unreadable startTime {unreadable!r}: skipped"


def test_an_unreadable_marketplace_time_falls_back_and_is_flagged() -> None:
    payload = example("AppointmentUpdate")
    payload["appointment"]["dateUpdated"] = "2026-13-45T99:00:00Z"
    payload["appointment"]["endTime"] = "soon"
    parsed = parse(payload)
    change = parsed.changes[0]
    assert change.source_updated_at == datetime.fromisoformat(payload["timestamp"])
    assert "end_time" not in change.columns and change.columns["status"] == "showed"
    assert "unreadable dateUpdated" in parsed.flag and "unreadable endTime 'soon'" in parsed.flag


# --- partial events ------------------------------------------------------------------------


def test_a_partial_dnd_event_carries_only_its_fields() -> None:
    payload = {
        "type": "ContactDndUpdate",
        "locationId": LOCATION,
        "id": CONTACT,
        "dnd": True,
        "dndSettings": {"SMS": {"status": "active", "message": "Contact replied STOP"}},
        "webhookId": str(uuid.uuid4()),
        "timestamp": "2026-11-18T01:07:55.318+00:00",
    }
    change = parse(payload).changes[0]
    assert dict(change.columns) == {"dnd": True}  # no name, email, phone or tags blanked


def test_a_partial_tag_event_carries_only_the_tags() -> None:
    payload = {"type": "ContactTagUpdate", "locationId": LOCATION, "id": CONTACT,
               "tags": ["client", "vip"], "timestamp": "2026-11-18T01:07:55Z"}  # fmt: skip
    assert dict(parse(payload).changes[0].columns) == {"tags": ["client", "vip"]}


def test_api_v3_dnd_channel_names_are_the_v2_ones() -> None:
    payload = example("ContactUpdate") | {
        "dndSettings": {"sms": {"status": "active"}, "whatsApp": {"status": "permanent"}}
    }
    assert [o.channel for o in parse(payload).opt_outs] == ["SMS", "WhatsApp"]


def test_a_stop_reply_puts_the_contact_under_dnd_as_of_the_reply() -> None:
    parsed = parse(example("InboundMessage-stop"))
    message, contact = parsed.changes
    assert (contact.entity, contact.entity_id, dict(contact.columns)) == (
        "contact",
        CONTACT,
        {"dnd": True},
    )
    assert contact.source_updated_at == message.columns["date_added"]


# --- event types TrainU does not know yet ----------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        # email statistics: nothing in it TrainU models yet
        {
            "type": "LCEmailStats",
            "locationId": LOCATION,
            "companyId": "co1",
            "webhookPayload": {"event": "delivered", "id": "e1"},
        },
        # carries conversationId, which would pass for a message by shape
        {
            "type": "ConversationUnreadUpdate",
            "locationId": LOCATION,
            "id": "cv1",
            "conversationId": "cv1",
            "contactId": CONTACT,
            "unreadCount": 2,
        },
        # an appointment by shape, but a type whose meaning TrainU has not learned
        example("AppointmentUpdate") | {"type": "AppointmentRescheduled"},
        # agency-level events carry no locationId
        {"type": "AppInstall", "companyId": "co1", "appId": "app1"},
    ],
)
def test_an_event_type_trainu_does_not_know_is_kept_unknown_not_guessed(
    payload: dict[str, Any],
) -> None:
    parsed = parse(payload)
    assert parsed.unknown and parsed.changes == () and parsed.opt_outs == ()
    assert parsed.event_type == payload["type"]
    assert parsed.flag.startswith(f"unknown event type {payload['type']!r}")


def test_the_whole_typed_contact_comes_from_the_body() -> None:
    change = parse(example("ContactCreate")).changes[0]
    assert dict(change.columns) == {
        "first_name": "Maya",
        "last_name": "Okafor",
        "email": "maya.okafor@example.com",
        "phone": "+17185550142",
        "timezone": "America/New_York",
        "assigned_user_id": "Uf3GhJ8kL2mN5pQ7rS9t",
        "dnd": False,
        "tags": ["trial-week", "lead"],
        "date_added": datetime(2026, 11, 2, 19, 3, 27, 481000, tzinfo=UTC),
    }


@pytest.mark.parametrize(
    ("status", "stored", "flagged"),
    [
        ("Confirmed", "confirmed", False),
        ("NOSHOW", "noshow", False),
        ("canceled", "cancelled", False),
        ("completed", "completed", False),
        ("Rescheduled", "rescheduled", True),
    ],
)
def test_appointment_status_is_lower_cased_and_unknown_ones_are_flagged(
    status: str, stored: str, flagged: bool
) -> None:
    payload = example("AppointmentUpdate")
    payload["appointment"]["appointmentStatus"] = status
    parsed = parse(payload)
    assert parsed.changes[0].columns["status"] == stored
    assert (parsed.flag is not None) == flagged


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("TYPE_SMS", "SMS"),
        ("TYPE_EMAIL", "Email"),
        ("TYPE_CALL", "CALL"),
        ("TYPE_LIVE_CHAT", "LIVE_CHAT"),
        ("Email", "Email"),
    ],
)
def test_message_types_use_the_webhooks_short_names(given: str, stored: str) -> None:
    payload = example("OutboundMessage") | {"messageType": given}
    assert parse(payload).changes[0].columns["message_type"] == stored


def test_a_message_without_message_id_gets_a_stable_derived_id() -> None:
    first = example("InboundMessage")
    redelivered = first | {"webhookId": str(uuid.uuid4()), "timestamp": "2026-11-21T00:57:19Z"}
    other = first | {"body": "Actually 7pm works better"}
    ids = [parse(p).changes[0].entity_id for p in (first, redelivered, other)]
    assert ids[0].startswith("derived-") and ids[0] == ids[1] != ids[2]


def test_task_complete_completes_and_deletes_are_tombstones() -> None:
    assert parse(example("TaskComplete")).changes[0].columns["completed"] is True
    assert "completed" not in parse(example("TaskCreate")).changes[0].columns
    for name in ("ContactDelete", "AppointmentDelete", "OpportunityDelete"):
        assert parse(example(name)).changes[0].deleted


def test_opportunity_money_is_exact() -> None:
    change = parse(example("OpportunityUpdate")).changes[0]
    assert change.columns["monetary_value"] == Decimal("599.5")
    assert change.columns["pipeline_stage_id"] == "St8YuI0oP2aS4dF6gH1j"


# --- opt-outs ------------------------------------------------------------------------------


def test_dnd_is_an_opt_out_from_every_channel_plus_each_active_channel() -> None:
    parsed = parse(example("ContactDndUpdate"))
    occurred = datetime(2026, 11, 18, 1, 7, 55, 318000, tzinfo=UTC)
    assert [(o.contact_id, o.reason, o.channel, o.occurred_at) for o in parsed.opt_outs] == [
        (CONTACT, "dnd", None, occurred),
        (CONTACT, "dnd", "SMS", occurred),
    ]
    assert parse(example("ContactUpdate")).opt_outs == ()


def test_a_permanent_channel_dnd_is_an_opt_out_even_without_global_dnd() -> None:
    payload = example("ContactUpdate") | {"dndSettings": {"Email": {"status": "permanent"}}}
    assert [(o.reason, o.channel) for o in parse(payload).opt_outs] == [("dnd", "Email")]


@pytest.mark.parametrize(
    ("body", "opted_out"),
    [
        ("STOP", True),
        ("stop.", True),
        ("Unsubscribe", True),
        ("  Opt-Out! ", True),
        ("STOPALL", True),
        ("quit", True),
        ("cancel", True),  # carrier standard, as the whole reply
        ("CANCEL", True),
        ("please stop texting me", True),  # a clear sentence
        ("I need to cancel tomorrow's session", False),
        ("Stop by at 5?", False),
        ("please don't stop my sessions", False),
        ("", False),
    ],
)
def test_a_stop_family_reply_is_an_opt_out_and_a_word_in_passing_is_not(
    body: str, opted_out: bool
) -> None:
    parsed = parse(example("InboundMessage-stop") | {"body": body})
    expected = [
        (CONTACT, "stop_reply", "SMS", datetime(2026, 11, 18, 1, 7, 53, 412000, tzinfo=UTC))
    ]
    assert [(o.contact_id, o.reason, o.channel, o.occurred_at) for o in parsed.opt_outs] == (
        expected if opted_out else []
    )


def test_stop_sent_by_the_studio_is_not_an_opt_out() -> None:
    payload = example("OutboundMessage") | {"body": "STOP"}
    assert parse(payload).opt_outs == ()


# --- the landing envelope ------------------------------------------------------------------


def test_envelope_uses_the_webhook_id_and_reads_the_entity() -> None:
    body = EXAMPLES["AppointmentUpdate"].read_bytes()
    env = envelope(json.loads(body), body, "marketplace")
    assert env.idempotency_key == "wh:f7a9c1e3-5d2b-4f8a-9c6e-1b3d5f7a9c02"
    assert (env.event_type, env.location_id, env.entity_id) == (
        "AppointmentUpdate",
        LOCATION,
        "Ap9XyZ1wV3uT5sR7qP2o",
    )
    # the appointment's dateUpdated, 08:05:31.2 at -05:00
    assert env.source_timestamp == datetime(2026, 11, 24, 13, 5, 31, 200000, tzinfo=UTC)


def test_envelope_hash_key_is_stable_for_a_body_and_changes_with_it() -> None:
    payload = {k: v for k, v in example("ContactUpdate").items() if k != "webhookId"}
    body = json.dumps(payload).encode()
    first, again = envelope(payload, body, "marketplace"), envelope(payload, body, "marketplace")
    assert first == again and re.fullmatch(r"h:[0-9a-f]{64}", first.idempotency_key)
    reformatted = json.dumps(payload, indent=1).encode()
    changed = payload | {"phone": "+17185550100"}
    keys = {
        first.idempotency_key,
        envelope(payload, reformatted, "marketplace").idempotency_key,
        envelope(changed, json.dumps(changed).encode(), "marketplace").idempotency_key,
        envelope(payload, body, "workflow").idempotency_key,
    }
    assert len(keys) == 4


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("2026-11-24T16:00:00+05:30", datetime(2026, 11, 24, 10, 30, tzinfo=UTC)),
        ("2026-11-24T10:30:00Z", datetime(2026, 11, 24, 10, 30, tzinfo=UTC)),
        (1795516200000, datetime(2026, 11, 24, 10, 30, tzinfo=UTC)),
        ("not a time", None),
        (True, None),
    ],
)
def test_envelope_source_timestamp_is_utc_and_never_raises(stamp: Any, expected: Any) -> None:
    payload = {"type": "ContactUpdate", "locationId": LOCATION, "id": CONTACT, "timestamp": stamp}
    env = envelope(payload, json.dumps(payload).encode(), "marketplace")
    assert env.source_timestamp == expected
    if expected is not None:
        assert env.source_timestamp.tzinfo == UTC


def test_workflow_envelope() -> None:
    body = EXAMPLES["workflow-appointment"].read_bytes()
    env = envelope(json.loads(body), body, "workflow")
    assert env.idempotency_key.startswith("h:")
    assert (env.event_type, env.location_id, env.entity_id) == (
        "Workflow",
        LOCATION,
        "Wf6TgB8nH0jM2kL4pO7i",
    )
    assert env.source_timestamp == datetime(2026, 11, 21, 1, 2, 18, 331000, tzinfo=UTC)


def test_envelope_of_a_message_without_id_names_the_row_it_will_land_in() -> None:
    payload = example("InboundMessage")
    env = envelope(payload, json.dumps(payload).encode(), "marketplace")
    assert env.entity_id == parse(payload).changes[0].entity_id


def test_envelope_copes_with_odd_bodies() -> None:
    odd = {"type": ["x"], "locationId": 7, "appointment": "nope", "webhookId": ""}
    env = envelope(odd, b"{}", "marketplace")
    assert (env.event_type, env.location_id, env.entity_id, env.source_timestamp) == (
        None,
        None,
        None,
        None,
    )
    assert env.idempotency_key.startswith("h:")


def test_parsing_does_not_change_the_payload() -> None:
    payload = example("workflow-appointment")
    before = copy.deepcopy(payload)
    parse(payload, "workflow")
    assert payload == before


def test_a_delete_without_any_time_is_dated_at_receipt_taken_as_utc() -> None:
    payload = {k: v for k, v in example("ContactDelete").items() if k != "timestamp"}
    naive = parse_event(payload, route="marketplace", received_at=datetime(2026, 12, 2, 9, 30))
    aware = parse_event(
        payload,
        route="marketplace",
        received_at=datetime(2026, 12, 2, 10, 30, tzinfo=timezone(timedelta(hours=1))),
    )
    assert naive.changes[0].source_updated_at == aware.changes[0].source_updated_at == RECEIVED
    assert naive.changes[0].deleted
