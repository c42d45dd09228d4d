"""Workflow (custom webhook) bodies: part of a contact and, from calendar triggers, a booking.

GHL workflows send snake_case contact fields at the top and the booking under `calendar`.
They are unsigned by GHL and carry no source time, so unless the workflow was set up to send
one (`customData.timestamp`) they are undated: they only fill fields nobody has set, and the
scheduled pulls reconcile.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainu_dagster.ghl.payloads.appointments import appointment_status
from trainu_dagster.ghl.payloads.contacts import tags_field
from trainu_dagster.ghl.payloads.events import EntityChange, ParsedEvent, UnparseableEvent
from trainu_dagster.ghl.payloads.reader import (
    FieldSpec,
    Reader,
    is_map,
    text,
    text_field,
    time_field,
)
from trainu_dagster.ghl.payloads.times import zone

WORKFLOW_CONTACT_FIELDS: FieldSpec = {
    "first_name": ("first_name", text_field, None),
    "last_name": ("last_name", text_field, None),
    "email": ("email", text_field, None),
    "phone": ("phone", text_field, None),
    "timezone": ("timezone", text_field, None),
    "tags": ("tags", tags_field, []),
}
WORKFLOW_CALENDAR_FIELDS: FieldSpec = {
    "calendar_id": ("id", text_field, None),
    "title": ("title", text_field, None),
    "start_time": ("startTime", time_field, None),
    "end_time": ("endTime", time_field, None),
}


def parse_workflow(payload: Mapping[str, Any], reader: Reader) -> ParsedEvent:
    """The contact and the appointment a workflow body carries, dated only if it sends a time."""
    location_id = workflow_location(payload)
    if not location_id:
        raise UnparseableEvent("workflow webhook without location.id or locationId")
    custom = payload.get("customData")
    updated = (reader.time(custom, "timestamp") if is_map(custom) else None) or reader.time(
        payload, "timestamp"
    )
    changes: list[EntityChange] = []
    contact_id = text(payload.get("contact_id"))
    if contact_id:
        columns = reader.columns(payload, WORKFLOW_CONTACT_FIELDS)
        changes.append(
            EntityChange("contact", location_id, contact_id, updated, False, columns, dict(payload))
        )
    calendar = payload.get("calendar")
    appointment_id = text(calendar.get("appointmentId")) if is_map(calendar) else None
    if appointment_id and is_map(calendar):
        columns = _appointment_columns(payload, calendar, reader)
        changes.append(
            EntityChange(
                "appointment", location_id, appointment_id, updated, False, columns, dict(payload)
            )
        )
    if not changes:
        raise UnparseableEvent("workflow webhook without contact_id or calendar.appointmentId")
    return ParsedEvent(
        event_type="Workflow",
        declared_type=text(payload.get("type")),
        flag=reader.flag(),
        changes=tuple(changes),
        opt_outs=(),
    )


def _appointment_columns(
    p: Mapping[str, Any], calendar: Mapping[str, Any], reader: Reader
) -> dict[str, Any]:
    # GHL spells it `appoinmentStatus` in workflow bodies; `status` is the calendar event's.
    keys = ("appoinmentStatus", "appointmentStatus", "status")
    raw_status = next((calendar[key] for key in keys if calendar.get(key)), None)
    # Calendar times may be local (no offset, or GHL's "Sun, Nov 30th, 2026 | 6:30 am"), in
    # the calendar's own timezone when it names one, else the studio's.
    in_zone = zone(calendar.get("selectedTimezone")) or reader.zone
    in_calendar_zone = Reader(zone=in_zone, problems=reader.problems)  # problems shared: one flag
    columns = in_calendar_zone.columns(calendar, WORKFLOW_CALENDAR_FIELDS)
    if raw_status is not None:
        status, problem = appointment_status(raw_status)
        columns["status"] = status
        if problem:
            reader.problems.append(problem)
    if "contact_id" in p:
        columns["contact_id"] = text(p["contact_id"])
    return columns


def workflow_location(payload: Mapping[str, Any]) -> str | None:
    location = payload.get("location")
    from_object = text(location.get("id")) if is_map(location) else None
    return from_object or text(payload.get("locationId"))
