"""Marketplace app events: one signed body per change to one GHL record.

The event's entity decides its parser (appointments, messages, or a flat record whose body
is the entity itself); whatever the entity, the opt-outs it implies come with it, and a
change that must be dated (a delete's tombstone, a pulled snapshot) is dated at receipt.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from trainu_dagster.ghl.payloads.appointments import appointment_change, resolve_create
from trainu_dagster.ghl.payloads.contacts import CONTACT_FIELDS, dnd_opt_outs
from trainu_dagster.ghl.payloads.events import (
    DELETE_EVENTS,
    EVENT_ENTITIES,
    Entity,
    EntityChange,
    OptOut,
    ParsedEvent,
    UnparseableEvent,
)
from trainu_dagster.ghl.payloads.messages import (
    message_change,
    opt_out_changes,
    resolve_direction,
    stop_reply,
)
from trainu_dagster.ghl.payloads.notes_and_tasks import NOTE_FIELDS, TASK_FIELDS
from trainu_dagster.ghl.payloads.opportunities import OPPORTUNITY_FIELDS
from trainu_dagster.ghl.payloads.reader import (
    FieldSpec,
    Reader,
    entity_payload,
    source_time,
    text,
)
from trainu_dagster.ghl.payloads.shapes import classify

FLAT_FIELDS: dict[Entity, FieldSpec] = {
    "contact": CONTACT_FIELDS,
    "opportunity": OPPORTUNITY_FIELDS,
    "note": NOTE_FIELDS,
    "task": TASK_FIELDS,
}


def parse_marketplace(
    payload: Mapping[str, Any], reader: Reader, received_at: datetime
) -> ParsedEvent:
    declared = text(payload.get("type"))
    if declared is not None and declared not in EVENT_ENTITIES:
        why = f"unknown event type {declared!r}: kept, not applied, until a parser exists"
        return ParsedEvent(declared, declared, why, (), (), unknown=True)
    location_id = text(payload.get("locationId"))
    if not location_id:
        raise UnparseableEvent("no locationId: cannot tell which studio the event belongs to")
    entity, event_type, classify_flag = classify(payload, declared)
    if entity == "message":
        event_type, direction, other_flag = resolve_direction(payload, event_type)
        change = message_change(payload, location_id, direction, reader)
    elif entity == "appointment":
        event_type, other_flag = resolve_create(payload["appointment"], event_type, reader)
        change = appointment_change(payload, location_id, event_type, reader)
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
        changes=(change, *opt_out_changes(change, opt_outs)),
        opt_outs=opt_outs,
    )


def _flat_change(
    entity: Entity, p: Mapping[str, Any], location_id: str, event_type: str, reader: Reader
) -> EntityChange:
    """Contacts, opportunities, notes and tasks: the entity is the body itself."""
    entity_id = text(p.get("id"))
    if not entity_id:
        raise UnparseableEvent(f"{event_type} without an id")
    columns = reader.columns(p, FLAT_FIELDS[entity])
    if event_type == "TaskComplete":
        columns["completed"] = True
    return EntityChange(
        entity=entity,
        location_id=location_id,
        entity_id=entity_id,
        source_updated_at=source_time(p, event_type, p, reader),
        deleted=event_type in DELETE_EVENTS,
        columns=columns,
        payload=entity_payload(p),
    )


def _opt_outs(change: EntityChange, received_at: datetime) -> tuple[OptOut, ...]:
    """Consent withdrawn is never dropped: without a time of its own, it dates from receipt."""
    if change.entity == "contact":
        return dnd_opt_outs(change, change.source_updated_at or received_at)
    if change.entity == "message":
        return stop_reply(change, received_at)
    return ()
