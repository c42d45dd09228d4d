"""The landing envelope: what the receiver stores with a delivery before anything parses it.

On the receiver's hot path, so cheap lookups only, and it never raises: a signed delivery
whose fields are odd is still landed, and the parser judges it later. Its key makes GHL's
redeliveries a no-op: GHL's `webhookId` when it sends one, else a hash of what identifies
the delivery (a message without a `messageId` by the id the parser derives for it).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from trainu_dagster.ghl.payloads.events import Route
from trainu_dagster.ghl.payloads.messages import declared_direction, message_id, read_direction
from trainu_dagster.ghl.payloads.reader import is_map, text
from trainu_dagster.ghl.payloads.shapes import MESSAGE_KEYS
from trainu_dagster.ghl.payloads.times import parse_timestamp
from trainu_dagster.ghl.payloads.workflow import workflow_location


@dataclass(frozen=True, slots=True)
class Envelope:
    idempotency_key: str
    event_type: str | None
    location_id: str | None
    entity_id: str | None
    source_timestamp: datetime | None


def envelope(payload: Mapping[str, Any], body: bytes, route: Route) -> Envelope:
    """What the receiver stores with a delivery, and the key that makes redelivery a no-op."""
    workflow = route == "workflow"
    event_type = "Workflow" if workflow else text(payload.get("type"))
    location_id = workflow_location(payload) if workflow else text(payload.get("locationId"))
    entity_id = _entity_id(payload, workflow)
    stamp = _workflow_stamp(payload) if workflow else _marketplace_stamp(payload)
    try:
        source_timestamp = parse_timestamp(stamp)
    except ValueError:
        source_timestamp = None
    webhook_id = text(payload.get("webhookId"))
    if webhook_id:
        key = f"wh:{webhook_id}"
    else:
        parts = (route, event_type, location_id, entity_id, stamp, hashlib.sha256(body).hexdigest())
        digest = hashlib.sha256("\x1f".join("" if p is None else str(p) for p in parts).encode())
        key = "h:" + digest.hexdigest()
    return Envelope(key, event_type, location_id, entity_id, source_timestamp)


def _entity_id(payload: Mapping[str, Any], workflow: bool) -> str | None:
    if workflow:
        calendar = payload.get("calendar")
        appointment_id = text(calendar.get("appointmentId")) if is_map(calendar) else None
        return appointment_id or text(payload.get("contact_id"))
    appointment = payload.get("appointment")
    if is_map(appointment):
        return text(appointment.get("id"))
    if any(key in payload for key in MESSAGE_KEYS):
        direction = read_direction(payload.get("direction")) or declared_direction(payload)
        return message_id(payload, direction)
    return text(payload.get("id"))


def _marketplace_stamp(payload: Mapping[str, Any]) -> Any:
    appointment = payload.get("appointment")
    entity = appointment if is_map(appointment) else payload
    return entity.get("dateUpdated") or payload.get("timestamp")


def _workflow_stamp(payload: Mapping[str, Any]) -> Any:
    custom = payload.get("customData")
    return (custom.get("timestamp") if is_map(custom) else None) or payload.get("timestamp")
