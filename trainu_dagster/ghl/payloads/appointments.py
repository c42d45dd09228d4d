"""Appointments: the booking under a Marketplace event's `appointment`, its status, and
GHL's creates that are really updates.

Bookings are what shows, no-shows and retention are counted from, so a status is kept even
when unknown (flagged for a human), and a create carrying a later `dateUpdated` is treated
as the update it is rather than resurrecting an older state.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from trainu_dagster.ghl.payloads.events import DELETE_EVENTS, EntityChange, UnparseableEvent
from trainu_dagster.ghl.payloads.reader import (
    FieldSpec,
    Reader,
    source_time,
    text,
    text_field,
    time_field,
)

APPOINTMENT_STATUSES = frozenset(
    {"new", "confirmed", "cancelled", "showed", "noshow", "invalid", "active", "completed"}
)
APPOINTMENT_STATUS_ALIASES = {"canceled": "cancelled", "no_show": "noshow", "no-show": "noshow"}
# A create whose dateUpdated is this much later than its dateAdded is really an update.
CREATE_UPDATE_SLACK = timedelta(minutes=1)


def appointment_status(value: Any) -> tuple[str | None, str | None]:
    """Lower-cased (workflows send `Confirmed`); an unknown status is kept but flagged."""
    raw = text(value)
    if raw is None:
        return None, None
    status = raw.strip().lower()
    status = APPOINTMENT_STATUS_ALIASES.get(status, status)
    if status in APPOINTMENT_STATUSES:
        return status, None
    return status, f"unknown appointment status {raw!r}"


def _status_field(reader: Reader, obj: Mapping[str, Any], key: str) -> Any:
    status, problem = appointment_status(obj[key])
    if problem:
        reader.problems.append(problem)
    return status


APPOINTMENT_FIELDS: FieldSpec = {
    "calendar_id": ("calendarId", text_field, None),
    "contact_id": ("contactId", text_field, None),
    "assigned_user_id": ("assignedUserId", text_field, None),
    "status": ("appointmentStatus", _status_field, None),
    "title": ("title", text_field, None),
    "start_time": ("startTime", time_field, None),
    "end_time": ("endTime", time_field, None),
    "date_added": ("dateAdded", time_field, None),
}


def resolve_create(
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


def appointment_change(
    payload: Mapping[str, Any], location_id: str, event_type: str, reader: Reader
) -> EntityChange:
    a = payload["appointment"]
    entity_id = text(a.get("id"))
    if not entity_id:
        raise UnparseableEvent(f"{event_type} whose appointment has no id")
    return EntityChange(
        entity="appointment",
        location_id=location_id,
        entity_id=entity_id,
        source_updated_at=source_time(a, event_type, payload, reader),
        deleted=event_type in DELETE_EVENTS,
        columns=reader.columns(a, APPOINTMENT_FIELDS),
        payload=dict(a),
    )
