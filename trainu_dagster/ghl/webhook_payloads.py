"""GHL webhook bodies turned into typed changes to the raw tables (pure: no database, no Dagster).

Three rules hold for every shape GHL sends:
- A delivery sets only the fields it carries. GHL's partial events (a DND change, a tag change)
  and workflow bodies never blank the rest of a record; a field that cannot be read (a time in
  an unknown format) is skipped and the delivery flagged, never rejected whole. A REST record
  from a pull is the exception: it is a complete snapshot, so a field it lacks is empty.
- A delivery's time is its source time (`dateUpdated`, or `dateAdded` for a create), else GHL's
  signed delivery `timestamp` (contact events carry no `dateUpdated`). A delivery with neither
  (workflow bodies) is undated: it only fills fields nobody has set (see `ingest.apply`).
- When the declared `type` and the payload's shape disagree (GHL's own examples get it wrong)
  the shape wins and the event is flagged. A type TrainU does not know yet is not guessed at:
  the event is kept as `unknown` until a parser exists for it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dateutil import parser as dateutil_parser

from trainu_dagster.ghl.opt_out import is_opt_out

Route = Literal["marketplace", "workflow"]
Entity = Literal["contact", "appointment", "message", "opportunity", "note", "task"]

EVENT_ENTITIES: dict[str, Entity] = {
    "ContactCreate": "contact",
    "ContactUpdate": "contact",
    "ContactDelete": "contact",
    "ContactDndUpdate": "contact",
    "ContactTagUpdate": "contact",
    "AppointmentCreate": "appointment",
    "AppointmentUpdate": "appointment",
    "AppointmentDelete": "appointment",
    "InboundMessage": "message",
    "OutboundMessage": "message",
    "OpportunityCreate": "opportunity",
    "OpportunityUpdate": "opportunity",
    "OpportunityDelete": "opportunity",
    "OpportunityStageUpdate": "opportunity",
    "OpportunityStatusUpdate": "opportunity",
    "OpportunityAssignedToUpdate": "opportunity",
    "OpportunityMonetaryValueUpdate": "opportunity",
    "NoteCreate": "note",
    "NoteUpdate": "note",
    "NoteDelete": "note",
    "TaskCreate": "task",
    "TaskComplete": "task",
    "TaskDelete": "task",
}
DELETE_EVENTS = frozenset(name for name in EVENT_ENTITIES if name.endswith("Delete"))
CREATE_EVENTS = frozenset(name for name in EVENT_ENTITIES if name.endswith("Create"))

# Keys only one kind of entity carries: they decide the shape whatever `type` says.
MESSAGE_KEYS = ("direction", "messageType", "conversationId")
OPPORTUNITY_KEYS = ("pipelineId", "pipelineStageId", "monetaryValue")
CONTACT_KEYS = ("firstName", "lastName", "email", "phone", "dnd", "dndSettings", "tags")
# Delivery metadata, not entity state: stripped so redeliveries of one state compare equal.
ENVELOPE_KEYS = frozenset({"type", "webhookId", "timestamp"})

APPOINTMENT_STATUSES = frozenset(
    {"new", "confirmed", "cancelled", "showed", "noshow", "invalid", "active", "completed"}
)
APPOINTMENT_STATUS_ALIASES = {"canceled": "cancelled", "no_show": "noshow", "no-show": "noshow"}
# A create whose dateUpdated is this much later than its dateAdded is really an update.
CREATE_UPDATE_SLACK = timedelta(minutes=1)

# REST says TYPE_SMS, webhooks say SMS: store the webhook's short names.
MESSAGE_TYPES = {
    "TYPE_SMS": "SMS",
    "TYPE_EMAIL": "Email",
    "TYPE_CALL": "CALL",
    "TYPE_WHATSAPP": "WhatsApp",
    "TYPE_FACEBOOK": "FB",
    "TYPE_INSTAGRAM": "IG",
    "TYPE_GMB": "GMB",
}
# DND channels as API v2 names them; v3 spells them in lower camel case (`sms`, `whatsApp`).
DND_CHANNELS = {name.casefold(): name for name in ("SMS", "Email", "Call", "WhatsApp", "GMB", "FB")}

DND_ACTIVE = frozenset({"active", "permanent"})


class UnparseableEvent(ValueError):
    """The event cannot be classified at all; it belongs in the dead-letter queue."""


@dataclass(frozen=True, slots=True)
class Envelope:
    idempotency_key: str
    event_type: str | None
    location_id: str | None
    entity_id: str | None
    source_timestamp: datetime | None


@dataclass(frozen=True, slots=True)
class EntityChange:
    """What one delivery says about one record: the typed fields it carries, as of
    `source_updated_at` (None: undated, so it only fills what nobody has set)."""

    entity: Entity
    location_id: str
    entity_id: str
    source_updated_at: datetime | None
    deleted: bool
    columns: Mapping[str, Any]
    payload: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class OptOut:
    location_id: str
    contact_id: str
    reason: Literal["dnd", "stop_reply"]
    channel: str | None
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class ParsedEvent:
    event_type: str
    declared_type: str | None
    flag: str | None
    changes: tuple[EntityChange, ...]
    opt_outs: tuple[OptOut, ...]
    unknown: bool = False  # a type TrainU has no parser for yet: kept, not applied


# --- the landing envelope (hot path: cheap lookups only, never raises) -------------------


def envelope(payload: Mapping[str, Any], body: bytes, route: Route) -> Envelope:
    """What the receiver stores with a delivery, and the key that makes redelivery a no-op."""
    workflow = route == "workflow"
    event_type = "Workflow" if workflow else _text(payload.get("type"))
    location_id = _workflow_location(payload) if workflow else _text(payload.get("locationId"))
    entity_id = _envelope_entity_id(payload, workflow)
    stamp = _workflow_stamp(payload) if workflow else _marketplace_stamp(payload)
    try:
        source_timestamp = parse_timestamp(stamp)
    except ValueError:
        source_timestamp = None
    webhook_id = _text(payload.get("webhookId"))
    if webhook_id:
        key = f"wh:{webhook_id}"
    else:
        parts = (route, event_type, location_id, entity_id, stamp, hashlib.sha256(body).hexdigest())
        digest = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode())
        key = "h:" + digest.hexdigest()
    return Envelope(key, event_type, location_id, entity_id, source_timestamp)


def _envelope_entity_id(payload: Mapping[str, Any], workflow: bool) -> str | None:
    if workflow:
        calendar = payload.get("calendar")
        appointment_id = _text(calendar.get("appointmentId")) if _is_map(calendar) else None
        return appointment_id or _text(payload.get("contact_id"))
    appointment = payload.get("appointment")
    if _is_map(appointment):
        return _text(appointment.get("id"))
    if any(key in payload for key in MESSAGE_KEYS):
        direction = _direction(payload.get("direction")) or _declared_direction(payload)
        return _message_id(payload, direction)
    return _text(payload.get("id"))


def _marketplace_stamp(payload: Mapping[str, Any]) -> Any:
    appointment = payload.get("appointment")
    entity = appointment if _is_map(appointment) else payload
    return entity.get("dateUpdated") or payload.get("timestamp")


def _workflow_stamp(payload: Mapping[str, Any]) -> Any:
    custom = payload.get("customData")
    return (custom.get("timestamp") if _is_map(custom) else None) or payload.get("timestamp")


# --- reading fields ------------------------------------------------------------------------


@dataclass
class Reader:
    """Reads typed fields out of one body. A value that cannot be read is left out of the
    change (so it overwrites nothing) and noted, to flag the delivery for a human."""

    zone: tzinfo = UTC  # the studio's: local times without an offset are read in it
    snapshot: bool = False  # a complete REST record: a field it lacks is empty
    problems: list[str] = field(default_factory=list)

    def time(self, obj: Mapping[str, Any], key: str, zone: tzinfo | None = None) -> datetime | None:
        try:
            return parse_timestamp(obj.get(key), zone or self.zone)
        except ValueError:
            self.problems.append(f"unreadable {key} {obj.get(key)!r}: skipped")
            return None

    def columns(self, obj: Mapping[str, Any], spec: FieldSpec) -> dict[str, Any]:
        """The spec's columns that `obj` carries (all of them for a snapshot)."""
        columns: dict[str, Any] = {}
        for column, (key, read, empty) in spec.items():
            if key in obj:
                value = read(self, obj, key)
                if value is not _UNREADABLE:
                    columns[column] = value
            elif self.snapshot:
                columns[column] = empty
        return columns

    def flag(self, *more: str | None) -> str | None:
        return "; ".join(dict.fromkeys([f for f in more if f] + self.problems)) or None


_UNREADABLE = object()


def _text_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    return _text(obj[key])


def _time_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    problems = len(reader.problems)
    moment = reader.time(obj, key)
    return _UNREADABLE if len(reader.problems) > problems else moment


def _flag_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    return obj[key] is True


def _tags_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    return _tags(obj[key])


def _money_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    return _money(obj[key])


def _status_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    status, problem = _appointment_status(obj[key])
    if problem:
        reader.problems.append(problem)
    return status


# column -> (the body's key, how to read it, its value when a snapshot lacks the key)
FieldSpec = dict[str, tuple[str, Callable[[Reader, Mapping[str, Any], str], Any], Any]]
CONTACT_FIELDS: FieldSpec = {
    "first_name": ("firstName", _text_field, None),
    "last_name": ("lastName", _text_field, None),
    "email": ("email", _text_field, None),
    "phone": ("phone", _text_field, None),
    "timezone": ("timezone", _text_field, None),
    "assigned_user_id": ("assignedTo", _text_field, None),
    "dnd": ("dnd", _flag_field, False),
    "tags": ("tags", _tags_field, []),
    "date_added": ("dateAdded", _time_field, None),
}
APPOINTMENT_FIELDS: FieldSpec = {
    "calendar_id": ("calendarId", _text_field, None),
    "contact_id": ("contactId", _text_field, None),
    "assigned_user_id": ("assignedUserId", _text_field, None),
    "status": ("appointmentStatus", _status_field, None),
    "title": ("title", _text_field, None),
    "start_time": ("startTime", _time_field, None),
    "end_time": ("endTime", _time_field, None),
    "date_added": ("dateAdded", _time_field, None),
}
MESSAGE_FIELDS: FieldSpec = {
    "conversation_id": ("conversationId", _text_field, None),
    "contact_id": ("contactId", _text_field, None),
    "status": ("status", _text_field, None),
    "date_added": ("dateAdded", _time_field, None),
}
OPPORTUNITY_FIELDS: FieldSpec = {
    "contact_id": ("contactId", _text_field, None),
    "pipeline_id": ("pipelineId", _text_field, None),
    "pipeline_stage_id": ("pipelineStageId", _text_field, None),
    "status": ("status", _text_field, None),
    "monetary_value": ("monetaryValue", _money_field, None),
    "assigned_to": ("assignedTo", _text_field, None),
}
NOTE_FIELDS: FieldSpec = {
    "contact_id": ("contactId", _text_field, None),
    "date_added": ("dateAdded", _time_field, None),
}
TASK_FIELDS: FieldSpec = {
    "contact_id": ("contactId", _text_field, None),
    "assigned_to": ("assignedTo", _text_field, None),
    "title": ("title", _text_field, None),
    "due_date": ("dueDate", _time_field, None),
    "completed": ("completed", _flag_field, False),
}
FLAT_FIELDS: dict[Entity, FieldSpec] = {
    "contact": CONTACT_FIELDS,
    "opportunity": OPPORTUNITY_FIELDS,
    "note": NOTE_FIELDS,
    "task": TASK_FIELDS,
}
# Workflow bodies: snake_case contact fields at the top, the booking under `calendar`.
WORKFLOW_CONTACT_FIELDS: FieldSpec = {
    "first_name": ("first_name", _text_field, None),
    "last_name": ("last_name", _text_field, None),
    "email": ("email", _text_field, None),
    "phone": ("phone", _text_field, None),
    "timezone": ("timezone", _text_field, None),
    "tags": ("tags", _tags_field, []),
}
WORKFLOW_CALENDAR_FIELDS: FieldSpec = {
    "calendar_id": ("id", _text_field, None),
    "title": ("title", _text_field, None),
    "start_time": ("startTime", _time_field, None),
    "end_time": ("endTime", _time_field, None),
}


# --- parsing -----------------------------------------------------------------------------


def parse_event(
    payload: Mapping[str, Any],
    *,
    route: Route,
    received_at: datetime,
    timezone: tzinfo = UTC,
    snapshot: bool = False,
) -> ParsedEvent:
    """Classify a landed webhook and turn it into raw-table changes and opt-outs.

    `timezone` is the studio's, for local times that carry no offset. `snapshot` marks a
    complete REST record (pulls): fields it lacks are empty, and one without a time of its
    own is dated at `received_at`. A delivery's `received_at` dates only what must have a
    time and carries none at all: a delete (a tombstone needs one) and an opt-out.
    """
    if not _is_map(payload):
        raise UnparseableEvent(f"payload is a {type(payload).__name__}, not a JSON object")
    received = (received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)).astimezone(
        UTC
    )
    reader = Reader(zone=timezone, snapshot=snapshot)
    if route == "workflow":
        return _parse_workflow(payload, reader)
    if route == "marketplace":
        return _parse_marketplace(payload, reader, received)
    raise UnparseableEvent(f"unknown webhook route {route!r}")


def _parse_marketplace(
    payload: Mapping[str, Any], reader: Reader, received_at: datetime
) -> ParsedEvent:
    declared = _text(payload.get("type"))
    if declared is not None and declared not in EVENT_ENTITIES:
        why = f"unknown event type {declared!r}: kept, not applied, until a parser exists"
        return ParsedEvent(declared, declared, why, (), (), unknown=True)
    location_id = _text(payload.get("locationId"))
    if not location_id:
        raise UnparseableEvent("no locationId: cannot tell which studio the event belongs to")
    entity, event_type, classify_flag = _classify(payload, declared)
    if entity == "message":
        event_type, direction, other_flag = _resolve_direction(payload, event_type)
        change = _message_change(payload, location_id, direction, reader)
    elif entity == "appointment":
        event_type, other_flag = _resolve_create(payload["appointment"], event_type, reader)
        change = _appointment_change(payload, location_id, event_type, reader)
    else:
        other_flag = None
        change = _flat_change(entity, payload, location_id, event_type, reader)
    if change.source_updated_at is None and (change.deleted or reader.snapshot):
        change = replace(change, source_updated_at=received_at)
    opt_outs = _opt_outs(change, received_at)
    return ParsedEvent(
        event_type=event_type,
        declared_type=declared,
        flag=reader.flag(classify_flag, other_flag),
        changes=(change, *_opt_out_changes(change, opt_outs)),
        opt_outs=opt_outs,
    )


def _classify(payload: Mapping[str, Any], declared: str | None) -> tuple[Entity, str, str | None]:
    """(entity, event type, flag): the declared type when the shape allows it, else the shape."""
    strong, weak = _strong_shape(payload), _weak_shape(payload)
    declared_entity = EVENT_ENTITIES.get(declared) if declared else None
    if declared and declared_entity and _fits(declared_entity, strong, weak):
        return declared_entity, declared, None
    shape = strong or weak
    if shape is None:
        if declared_entity is not None:
            raise UnparseableEvent(f"{declared} event whose payload has no {declared_entity} in it")
        keys = ", ".join(sorted(map(str, payload))[:12])
        raise UnparseableEvent(f"no event type and an unrecognised payload shape (keys: {keys})")
    event_type = _shape_event_type(shape)
    why = (
        f"declared type {declared} does not match the payload's shape ({shape})"
        if declared_entity is not None
        else "no event type"
    )
    return shape, event_type, f"{why}: treated as {event_type} by shape"


def _strong_shape(payload: Mapping[str, Any]) -> Entity | None:
    if _is_map(payload.get("appointment")):
        return "appointment"
    if any(key in payload for key in MESSAGE_KEYS):
        return "message"
    if any(key in payload for key in OPPORTUNITY_KEYS):
        return "opportunity"
    return None


def _weak_shape(payload: Mapping[str, Any]) -> Entity | None:
    if not _text(payload.get("id")):
        return None
    if "title" in payload and "dueDate" in payload:
        return "task"
    if "body" in payload and "contactId" in payload:
        return "note"
    if any(key in payload for key in CONTACT_KEYS):
        return "contact"
    return None


def _fits(declared: Entity, strong: Entity | None, weak: Entity | None) -> bool:
    if strong is not None or declared in ("appointment", "message"):
        return declared == strong
    # A task without a due date looks like a note; nothing else is ambiguous.
    return weak in (None, declared) or (declared == "task" and weak == "note")


def _shape_event_type(entity: Entity) -> str:
    # Upserts make create and update equivalent, so the shape only needs the family.
    return {
        "contact": "ContactUpdate",
        "appointment": "AppointmentUpdate",
        "message": "Message",
        "opportunity": "OpportunityUpdate",
        "note": "NoteCreate",
        "task": "TaskCreate",
    }[entity]


def _resolve_direction(
    payload: Mapping[str, Any], event_type: str
) -> tuple[str, str | None, str | None]:
    """The payload's `direction` decides Inbound vs Outbound, whatever `type` claims."""
    direction = _direction(payload.get("direction"))
    declared = {"InboundMessage": "inbound", "OutboundMessage": "outbound"}.get(event_type)
    if direction is None:
        if declared is None:
            return event_type, None, "message without a direction"
        return event_type, declared, None
    resolved = "InboundMessage" if direction == "inbound" else "OutboundMessage"
    if declared is not None and declared != direction:
        return resolved, direction, f"declared {event_type} but direction is {direction}"
    return resolved, direction, None


def _resolve_create(
    appointment: Mapping[str, Any], event_type: str, reader: Reader
) -> tuple[str, str | None]:
    if event_type != "AppointmentCreate":
        return event_type, None
    added, updated = (reader.time(appointment, key) for key in ("dateAdded", "dateUpdated"))
    if added and updated and updated - added > CREATE_UPDATE_SLACK:
        return "AppointmentUpdate", (
            "declared AppointmentCreate but dateUpdated is after dateAdded: "
            "treated as AppointmentUpdate"
        )
    return event_type, None


def _source_time(
    entity: Mapping[str, Any], event_type: str, payload: Mapping[str, Any], reader: Reader
) -> datetime | None:
    """`dateUpdated`, or `dateAdded` for a create, else the signed delivery `timestamp`."""
    keys = ("dateUpdated", "dateAdded") if event_type in CREATE_EVENTS else ("dateUpdated",)
    for key in keys:
        if entity.get(key) and (moment := reader.time(entity, key)):
            return moment
    return reader.time(payload, "timestamp")


# --- typed columns per entity ---------------------------------------------------------------


def _entity_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in ENVELOPE_KEYS}


def _flat_change(
    entity: Entity, p: Mapping[str, Any], location_id: str, event_type: str, reader: Reader
) -> EntityChange:
    """Contacts, opportunities, notes and tasks: the entity is the body itself."""
    entity_id = _text(p.get("id"))
    if not entity_id:
        raise UnparseableEvent(f"{event_type} without an id")
    columns = reader.columns(p, FLAT_FIELDS[entity])
    if event_type == "TaskComplete":
        columns["completed"] = True
    return EntityChange(
        entity=entity,
        location_id=location_id,
        entity_id=entity_id,
        source_updated_at=_source_time(p, event_type, p, reader),
        deleted=event_type in DELETE_EVENTS,
        columns=columns,
        payload=_entity_payload(p),
    )


def _appointment_change(
    payload: Mapping[str, Any], location_id: str, event_type: str, reader: Reader
) -> EntityChange:
    a = payload["appointment"]
    entity_id = _text(a.get("id"))
    if not entity_id:
        raise UnparseableEvent(f"{event_type} whose appointment has no id")
    return EntityChange(
        entity="appointment",
        location_id=location_id,
        entity_id=entity_id,
        source_updated_at=_source_time(a, event_type, payload, reader),
        deleted=event_type in DELETE_EVENTS,
        columns=reader.columns(a, APPOINTMENT_FIELDS),
        payload=dict(a),
    )


def _message_change(
    p: Mapping[str, Any], location_id: str, direction: str | None, reader: Reader
) -> EntityChange:
    """Messages are dated by `dateUpdated` or the delivery, not `dateAdded`: a status update
    (sent, then delivered) keeps the message's `dateAdded`, and must still come out on top."""
    if not any(_text(p.get(key)) for key in ("messageId", "conversationId", "contactId")):
        raise UnparseableEvent("message with no messageId, conversationId or contactId")
    columns = reader.columns(p, MESSAGE_FIELDS)
    if direction is not None or reader.snapshot:
        columns["direction"] = direction
    if "messageType" in p:
        columns["message_type"] = _message_type(p["messageType"])
    elif reader.snapshot:
        columns["message_type"] = None
    return EntityChange(
        entity="message",
        location_id=location_id,
        entity_id=_message_id(p, direction),
        source_updated_at=_source_time(p, "Message", p, reader),
        deleted=False,
        columns=columns,
        payload=_entity_payload(p),
    )


def _message_id(p: Mapping[str, Any], direction: str | None) -> str:
    """GHL's messageId, or one derived from the content so redeliveries land on one row."""
    message_id = _text(p.get("messageId"))
    if message_id:
        return message_id
    try:
        added = parse_timestamp(p.get("dateAdded"))
    except ValueError:
        added = None
    stamp = added.isoformat() if added else p.get("dateAdded")
    parts = (p.get("conversationId"), p.get("contactId"), stamp, direction, p.get("body"))
    text = "\x1f".join("" if part is None else str(part) for part in parts)
    return "derived-" + hashlib.sha256(text.encode()).hexdigest()[:24]


# --- workflow (custom webhook) payloads ---------------------------------------------------


def _parse_workflow(payload: Mapping[str, Any], reader: Reader) -> ParsedEvent:
    """Snake_case workflow bodies carry part of a contact and, from calendar triggers, an
    appointment. They are unsigned by GHL and carry no source time, so unless the workflow
    was set up to send one (`customData.timestamp`) they are undated: they fill gaps."""
    location_id = _workflow_location(payload)
    if not location_id:
        raise UnparseableEvent("workflow webhook without location.id or locationId")
    custom = payload.get("customData")
    updated = (reader.time(custom, "timestamp") if _is_map(custom) else None) or reader.time(
        payload, "timestamp"
    )
    changes: list[EntityChange] = []
    contact_id = _text(payload.get("contact_id"))
    if contact_id:
        columns = reader.columns(payload, WORKFLOW_CONTACT_FIELDS)
        changes.append(
            EntityChange("contact", location_id, contact_id, updated, False, columns, dict(payload))
        )
    calendar = payload.get("calendar")
    appointment_id = _text(calendar.get("appointmentId")) if _is_map(calendar) else None
    if appointment_id and _is_map(calendar):
        columns = _workflow_appointment_columns(payload, calendar, reader)
        changes.append(
            EntityChange(
                "appointment", location_id, appointment_id, updated, False, columns, dict(payload)
            )
        )
    if not changes:
        raise UnparseableEvent("workflow webhook without contact_id or calendar.appointmentId")
    return ParsedEvent(
        event_type="Workflow",
        declared_type=_text(payload.get("type")),
        flag=reader.flag(),
        changes=tuple(changes),
        opt_outs=(),
    )


def _workflow_appointment_columns(
    p: Mapping[str, Any], calendar: Mapping[str, Any], reader: Reader
) -> dict[str, Any]:
    # GHL spells it `appoinmentStatus` in workflow bodies; `status` is the calendar event's.
    keys = ("appoinmentStatus", "appointmentStatus", "status")
    raw_status = next((calendar[key] for key in keys if calendar.get(key)), None)
    # Calendar times may be local (no offset, or GHL's "Sun, Nov 30th, 2026 | 6:30 am"), in
    # the calendar's own timezone when it names one, else the studio's.
    zone = _zone(calendar.get("selectedTimezone")) or reader.zone
    in_calendar_zone = Reader(zone=zone, problems=reader.problems)  # problems shared: one flag
    columns = in_calendar_zone.columns(calendar, WORKFLOW_CALENDAR_FIELDS)
    if raw_status is not None:
        status, problem = _appointment_status(raw_status)
        columns["status"] = status
        if problem:
            reader.problems.append(problem)
    if "contact_id" in p:
        columns["contact_id"] = _text(p["contact_id"])
    return columns


def _workflow_location(payload: Mapping[str, Any]) -> str | None:
    location = payload.get("location")
    from_object = _text(location.get("id")) if _is_map(location) else None
    return from_object or _text(payload.get("locationId"))


# --- opt-outs ------------------------------------------------------------------------------


def _opt_outs(change: EntityChange, received_at: datetime) -> tuple[OptOut, ...]:
    """Consent withdrawn is never dropped: without a time of its own, it dates from receipt."""
    if change.entity == "contact":
        return _dnd_opt_outs(change, change.source_updated_at or received_at)
    if change.entity == "message":
        return _stop_reply(change, received_at)
    return ()


def _dnd_opt_outs(change: EntityChange, occurred_at: datetime) -> tuple[OptOut, ...]:
    found = []
    if change.columns.get("dnd"):
        found.append(None)
    settings = change.payload.get("dndSettings")
    if _is_map(settings):
        found.extend(
            DND_CHANNELS.get(str(channel).casefold(), str(channel))
            for channel, setting in settings.items()
            if _is_map(setting) and str(setting.get("status", "")).lower() in DND_ACTIVE
        )
    return tuple(
        OptOut(change.location_id, change.entity_id, "dnd", channel, occurred_at)
        for channel in found
    )


def _stop_reply(change: EntityChange, received_at: datetime) -> tuple[OptOut, ...]:
    contact_id = change.columns.get("contact_id")
    body = change.payload.get("body")
    if change.columns.get("direction") != "inbound" or not contact_id or not isinstance(body, str):
        return ()
    if not is_opt_out(body):  # the same rule drafting and the CLI use
        return ()
    occurred_at = change.columns.get("date_added") or change.source_updated_at or received_at
    channel = change.columns.get("message_type")
    return (OptOut(change.location_id, contact_id, "stop_reply", channel, occurred_at),)


def _opt_out_changes(
    change: EntityChange, opt_outs: tuple[OptOut, ...]
) -> tuple[EntityChange, ...]:
    """A STOP reply puts the contact under DND as of the reply, so the contact's row follows
    the opt-outs recorded for it: an older contact snapshot cannot clear it, a later DND
    change in GHL (staff turning it off) can."""
    return tuple(
        EntityChange(
            "contact",
            o.location_id,
            o.contact_id,
            o.occurred_at,
            False,
            {"dnd": True},
            {"dnd": True},
        )
        for o in opt_outs
        if o.reason == "stop_reply"
    )


# --- field helpers -------------------------------------------------------------------------

# Two defaults that differ in every component: a human-readable time that parses to two
# different moments left a component (the year, the hour...) out, and is refused.
_PROBE_DEFAULTS = (datetime(2000, 1, 1, 0, 0), datetime(2001, 2, 2, 1, 1))


def parse_timestamp(value: Any, default_zone: tzinfo = UTC) -> datetime | None:
    """ISO-8601, epoch seconds/milliseconds, or GHL's human-readable form
    (`Sun, Nov 30th, 2026 | 6:30 am`), as UTC; a time without an offset is in `default_zone`."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"not a timestamp: {value!r}") from exc
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        parsed = _human_time(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_zone)
    return parsed.astimezone(UTC)


def _human_time(value: str) -> datetime:
    """GHL's merge-field times ("Sun, Nov 30th, 2026 | 6:30 am"), read by dateutil. The
    weekday is ignored (the date decides); named zones like "EST" are ambiguous and ignored."""
    text = value.replace("|", " ")
    try:
        first, second = (
            dateutil_parser.parse(text, default=default, tzinfos=_no_named_zones)
            for default in _PROBE_DEFAULTS
        )
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"not a timestamp: {value!r}") from exc
    if first != second:
        raise ValueError(f"not a complete date and time: {value!r}")
    return first


def _no_named_zones(name: str | None, offset: int | None) -> int | None:
    return offset


def _zone(name: Any) -> tzinfo | None:
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return None


def _appointment_status(value: Any) -> tuple[str | None, str | None]:
    """Lower-cased (workflows send `Confirmed`); an unknown status is kept but flagged."""
    text = _text(value)
    if text is None:
        return None, None
    status = text.strip().lower()
    status = APPOINTMENT_STATUS_ALIASES.get(status, status)
    if status in APPOINTMENT_STATUSES:
        return status, None
    return status, f"unknown appointment status {text!r}"


def _direction(value: Any) -> str | None:
    direction = value.strip().lower() if isinstance(value, str) else None
    return direction if direction in ("inbound", "outbound") else None


def _declared_direction(payload: Mapping[str, Any]) -> str | None:
    declared = _text(payload.get("type"))
    return {"InboundMessage": "inbound", "OutboundMessage": "outbound"}.get(declared or "")


def _message_type(value: Any) -> str | None:
    text = _text(value)
    if text is None or not text.startswith("TYPE_"):
        return text
    return MESSAGE_TYPES.get(text, text.removeprefix("TYPE_"))


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def _tags(value: Any) -> list[str]:
    """A list from marketplace events, a comma-separated string from workflows."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        return []
    tags = (item.strip() for item in items if isinstance(item, str))
    return list(dict.fromkeys(tag for tag in tags if tag))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _is_map(value: Any) -> bool:
    return isinstance(value, Mapping)
