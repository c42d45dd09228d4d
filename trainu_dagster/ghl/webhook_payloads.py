"""GHL webhook bodies turned into typed changes to the raw tables (pure: no database, no Dagster).

GHL's own examples get the event `type` wrong (an update labelled `AppointmentCreate`, an
inbound call labelled `OutboundMessage`), so when the declared type and the payload's shape
disagree the shape wins and the event is flagged for a human; nothing is dropped unless it
cannot be classified at all.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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

# The carrier-standard opt-out words. "CANCEL" is deliberately absent: in a training studio
# a client texting "cancel" is cancelling a session, not withdrawing consent to messages.
STOP_WORDS = frozenset(
    {"stop", "stopall", "unsubscribe", "end", "quit", "optout", "opt out", "revoke"}
)
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
    entity: Entity
    location_id: str
    entity_id: str
    source_updated_at: datetime
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


# --- parsing -----------------------------------------------------------------------------


def parse_event(payload: Mapping[str, Any], *, route: Route, received_at: datetime) -> ParsedEvent:
    """Classify a landed webhook and turn it into raw-table changes and opt-outs."""
    if not _is_map(payload):
        raise UnparseableEvent(f"payload is a {type(payload).__name__}, not a JSON object")
    received = received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)
    if route == "workflow":
        return _parse_workflow(payload, received.astimezone(UTC))
    if route == "marketplace":
        return _parse_marketplace(payload, received.astimezone(UTC))
    raise UnparseableEvent(f"unknown webhook route {route!r}")


def _parse_marketplace(payload: Mapping[str, Any], received_at: datetime) -> ParsedEvent:
    location_id = _text(payload.get("locationId"))
    if not location_id:
        raise UnparseableEvent("no locationId: cannot tell which studio the event belongs to")
    declared = _text(payload.get("type"))
    entity, event_type, flags = _classify(payload, declared)
    fallback = _timestamp(payload, "timestamp") or received_at
    if entity == "message":
        event_type, direction, direction_flag = _resolve_direction(payload, event_type)
        flags.append(direction_flag)
        change = _message_change(payload, location_id, direction, fallback)
    elif entity == "appointment":
        event_type, create_flag = _resolve_create(payload["appointment"], event_type)
        flags.append(create_flag)
        change, status_flag = _appointment_change(payload, location_id, event_type, fallback)
        flags.append(status_flag)
    else:
        change = _flat_change(entity, payload, location_id, event_type, fallback)
    return ParsedEvent(
        event_type=event_type,
        declared_type=declared,
        flag="; ".join(f for f in flags if f) or None,
        changes=(change,),
        opt_outs=_opt_outs(change),
    )


def _classify(payload: Mapping[str, Any], declared: str | None) -> tuple[Entity, str, list[str]]:
    """(entity, event type, flags): the declared type when the shape allows it, else the shape."""
    strong, weak = _strong_shape(payload), _weak_shape(payload)
    declared_entity = EVENT_ENTITIES.get(declared) if declared else None
    if declared and declared_entity and _fits(declared_entity, strong, weak):
        return declared_entity, declared, []
    shape = strong or weak
    if shape is None:
        if declared_entity is not None:
            raise UnparseableEvent(f"{declared} event whose payload has no {declared_entity} in it")
        keys = ", ".join(sorted(map(str, payload))[:12])
        raise UnparseableEvent(
            f"unknown event type {declared!r} and unrecognised payload shape (keys: {keys})"
        )
    event_type = _shape_event_type(shape)
    if declared_entity is not None:
        why = f"declared type {declared} does not match the payload's shape ({shape})"
    elif declared:
        why = f"unknown event type {declared!r}"
    else:
        why = "no event type"
    return shape, event_type, [f"{why}: treated as {event_type} by shape"]


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


def _resolve_create(appointment: Mapping[str, Any], event_type: str) -> tuple[str, str | None]:
    if event_type != "AppointmentCreate":
        return event_type, None
    added, updated = _timestamp(appointment, "dateAdded"), _timestamp(appointment, "dateUpdated")
    if added and updated and updated - added > CREATE_UPDATE_SLACK:
        return "AppointmentUpdate", (
            "declared AppointmentCreate but dateUpdated is after dateAdded: "
            "treated as AppointmentUpdate"
        )
    return event_type, None


# --- typed columns per entity ---------------------------------------------------------------


def _entity_payload(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k not in ENVELOPE_KEYS}


def _flat_change(
    entity: Entity, p: Mapping[str, Any], location_id: str, event_type: str, fallback: datetime
) -> EntityChange:
    """Contacts, opportunities, notes and tasks: the entity is the body itself."""
    entity_id = _text(p.get("id"))
    if not entity_id:
        raise UnparseableEvent(f"{event_type} without an id")
    return EntityChange(
        entity=entity,
        location_id=location_id,
        entity_id=entity_id,
        source_updated_at=_timestamp(p, "dateUpdated") or fallback,
        deleted=event_type in DELETE_EVENTS,
        columns=FLAT_COLUMNS[entity](p, event_type),
        payload=_entity_payload(p),
    )


def _contact_columns(p: Mapping[str, Any], event_type: str) -> dict[str, Any]:
    return {
        "first_name": _text(p.get("firstName")),
        "last_name": _text(p.get("lastName")),
        "email": _text(p.get("email")),
        "phone": _text(p.get("phone")),
        "timezone": _text(p.get("timezone")),
        "assigned_user_id": _text(p.get("assignedTo")),
        "dnd": p.get("dnd") is True,
        "tags": _tags(p.get("tags")),
        "date_added": _timestamp(p, "dateAdded"),
    }


def _opportunity_columns(p: Mapping[str, Any], event_type: str) -> dict[str, Any]:
    return {
        "contact_id": _text(p.get("contactId")),
        "pipeline_id": _text(p.get("pipelineId")),
        "pipeline_stage_id": _text(p.get("pipelineStageId")),
        "status": _text(p.get("status")),
        "monetary_value": _money(p.get("monetaryValue")),
        "assigned_to": _text(p.get("assignedTo")),
    }


def _note_columns(p: Mapping[str, Any], event_type: str) -> dict[str, Any]:
    return {"contact_id": _text(p.get("contactId")), "date_added": _timestamp(p, "dateAdded")}


def _task_columns(p: Mapping[str, Any], event_type: str) -> dict[str, Any]:
    return {
        "contact_id": _text(p.get("contactId")),
        "assigned_to": _text(p.get("assignedTo")),
        "title": _text(p.get("title")),
        "due_date": _timestamp(p, "dueDate"),
        "completed": event_type == "TaskComplete" or p.get("completed") is True,
    }


FLAT_COLUMNS = {
    "contact": _contact_columns,
    "opportunity": _opportunity_columns,
    "note": _note_columns,
    "task": _task_columns,
}


def _appointment_change(
    payload: Mapping[str, Any], location_id: str, event_type: str, fallback: datetime
) -> tuple[EntityChange, str | None]:
    a = payload["appointment"]
    entity_id = _text(a.get("id"))
    if not entity_id:
        raise UnparseableEvent(f"{event_type} whose appointment has no id")
    status, flag = _appointment_status(a.get("appointmentStatus"))
    columns = {
        "calendar_id": _text(a.get("calendarId")),
        "contact_id": _text(a.get("contactId")),
        "assigned_user_id": _text(a.get("assignedUserId")),
        "status": status,
        "title": _text(a.get("title")),
        "start_time": _timestamp(a, "startTime"),
        "end_time": _timestamp(a, "endTime"),
        "date_added": _timestamp(a, "dateAdded"),
    }
    change = EntityChange(
        entity="appointment",
        location_id=location_id,
        entity_id=entity_id,
        source_updated_at=_timestamp(a, "dateUpdated") or fallback,
        deleted=event_type in DELETE_EVENTS,
        columns=columns,
        payload=dict(a),
    )
    return change, flag


def _message_change(
    p: Mapping[str, Any], location_id: str, direction: str | None, fallback: datetime
) -> EntityChange:
    if not any(_text(p.get(key)) for key in ("messageId", "conversationId", "contactId")):
        raise UnparseableEvent("message with no messageId, conversationId or contactId")
    return EntityChange(
        entity="message",
        location_id=location_id,
        entity_id=_message_id(p, direction),
        source_updated_at=_timestamp(p, "dateUpdated") or fallback,
        deleted=False,
        columns={
            "conversation_id": _text(p.get("conversationId")),
            "contact_id": _text(p.get("contactId")),
            "direction": direction,
            "message_type": _message_type(p.get("messageType")),
            "status": _text(p.get("status")),
            "date_added": _timestamp(p, "dateAdded"),
        },
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


def _parse_workflow(payload: Mapping[str, Any], received_at: datetime) -> ParsedEvent:
    """Snake_case workflow bodies carry part of a contact and, from calendar triggers, an
    appointment; only the fields they carry are set, so they never blank out the rest."""
    location_id = _workflow_location(payload)
    if not location_id:
        raise UnparseableEvent("workflow webhook without location.id or locationId")
    custom = payload.get("customData")
    updated = (
        (_timestamp(custom, "timestamp") if _is_map(custom) else None)
        or _timestamp(payload, "timestamp")
        or received_at
    )
    changes: list[EntityChange] = []
    flag = None
    contact_id = _text(payload.get("contact_id"))
    if contact_id:
        changes.append(_workflow_contact(payload, location_id, contact_id, updated))
    calendar = payload.get("calendar")
    appointment_id = _text(calendar.get("appointmentId")) if _is_map(calendar) else None
    if appointment_id:
        appointment, flag = _workflow_appointment(
            payload, calendar, location_id, appointment_id, updated
        )
        changes.append(appointment)
    if not changes:
        raise UnparseableEvent("workflow webhook without contact_id or calendar.appointmentId")
    return ParsedEvent(
        event_type="Workflow",
        declared_type=_text(payload.get("type")),
        flag=flag,
        changes=tuple(changes),
        opt_outs=(),
    )


def _workflow_contact(
    p: Mapping[str, Any], location_id: str, contact_id: str, updated: datetime
) -> EntityChange:
    fields = ("first_name", "last_name", "email", "phone", "timezone")
    columns: dict[str, Any] = {name: _text(p[name]) for name in fields if name in p}
    if "tags" in p:
        columns["tags"] = _tags(p["tags"])
    return EntityChange("contact", location_id, contact_id, updated, False, columns, dict(p))


def _workflow_appointment(
    p: Mapping[str, Any],
    calendar: Mapping[str, Any],
    location_id: str,
    appointment_id: str,
    updated: datetime,
) -> tuple[EntityChange, str | None]:
    # GHL spells it `appoinmentStatus` in workflow bodies; `status` is the calendar event's.
    keys = ("appoinmentStatus", "appointmentStatus", "status")
    raw_status = next((calendar[key] for key in keys if calendar.get(key)), None)
    status, flag = _appointment_status(raw_status)
    # Calendar times may come without an offset, in the calendar's own timezone.
    zone = _zone(calendar.get("selectedTimezone"))
    columns: dict[str, Any] = {"status": status} if raw_status is not None else {}
    for column, key in (("calendar_id", "id"), ("title", "title")):
        if key in calendar:
            columns[column] = _text(calendar[key])
    if "contact_id" in p:
        columns["contact_id"] = _text(p["contact_id"])
    for column, key in (("start_time", "startTime"), ("end_time", "endTime")):
        if key in calendar:
            columns[column] = _timestamp(calendar, key, zone)
    change = EntityChange(
        "appointment", location_id, appointment_id, updated, False, columns, dict(p)
    )
    return change, flag


def _workflow_location(payload: Mapping[str, Any]) -> str | None:
    location = payload.get("location")
    from_object = _text(location.get("id")) if _is_map(location) else None
    return from_object or _text(payload.get("locationId"))


# --- opt-outs ------------------------------------------------------------------------------


def _opt_outs(change: EntityChange) -> tuple[OptOut, ...]:
    if change.entity == "contact":
        return _dnd_opt_outs(change)
    if change.entity == "message":
        return _stop_reply(change)
    return ()


def _dnd_opt_outs(change: EntityChange) -> tuple[OptOut, ...]:
    found = []
    if change.columns.get("dnd"):
        found.append(None)
    settings = change.payload.get("dndSettings")
    if _is_map(settings):
        found.extend(
            str(channel)
            for channel, setting in settings.items()
            if _is_map(setting) and str(setting.get("status", "")).lower() in DND_ACTIVE
        )
    return tuple(
        OptOut(change.location_id, change.entity_id, "dnd", channel, change.source_updated_at)
        for channel in found
    )


def _stop_reply(change: EntityChange) -> tuple[OptOut, ...]:
    contact_id = change.columns.get("contact_id")
    body = change.payload.get("body")
    if change.columns.get("direction") != "inbound" or not contact_id or not isinstance(body, str):
        return ()
    if not _is_stop_word(body):
        return ()
    occurred_at = change.columns.get("date_added") or change.source_updated_at
    channel = change.columns.get("message_type")
    return (OptOut(change.location_id, contact_id, "stop_reply", channel, occurred_at),)


def _is_stop_word(body: str) -> bool:
    """True when the whole message is an opt-out keyword ("Stop.", " UNSUBSCRIBE!")."""
    words = re.sub(r"[\s_-]+", " ", body.strip().rstrip(".!?,;:").strip()).casefold()
    return words in STOP_WORDS


# --- field helpers -------------------------------------------------------------------------


def parse_timestamp(value: Any, default_zone: tzinfo = UTC) -> datetime | None:
    """ISO-8601 (naive means `default_zone`) or epoch seconds/milliseconds, as UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        seconds = value / 1000 if abs(value) > 10**11 else value
        try:
            return datetime.fromtimestamp(seconds, UTC)
        except (OverflowError, OSError) as exc:
            raise ValueError(f"not a timestamp: {value!r}") from exc
    if not isinstance(value, str):
        raise ValueError(f"not a timestamp: {value!r}")
    parsed = datetime.fromisoformat(value.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=default_zone)
    return parsed.astimezone(UTC)


def _timestamp(obj: Mapping[str, Any], key: str, zone: tzinfo = UTC) -> datetime | None:
    try:
        return parse_timestamp(obj.get(key), zone)
    except ValueError as exc:
        raise UnparseableEvent(f"bad timestamp in {key}: {obj.get(key)!r}") from exc


def _zone(name: Any) -> tzinfo:
    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


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
