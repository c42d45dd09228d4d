"""What a webhook delivery says happened, in the terms drafting reacts to (pure).

A booking made, moved, no-showed, cancelled or deleted; a message from the client; a
contact opting out. `ingest` applies the delivery first; `messaging.drafts` then turns
these into drafts, and withdraws the drafts they make stale. Only webhooks make
happenings: a pull or a backfill brings history, not news, and drafts nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, TypedDict
from uuid import UUID

from trainu_dagster.ghl.payloads import EntityChange, ParsedEvent

Kind = Literal["booked", "updated", "no_show", "cancelled", "deleted", "inbound", "opted_out"]


@dataclass(frozen=True)
class Happening:
    kind: Kind
    location_id: str
    contact_id: str
    at: datetime | None  # when it happened, by GHL's clock
    correlation_id: UUID  # of the delivery, carried onto every draft and event
    webhook_event_id: int
    appointment_id: str | None = None
    start_time: datetime | None = None
    message_id: str | None = None
    text: str | None = None  # an inbound message's body
    channel: str | None = None  # SMS, Email...


class _Delivered(TypedDict):
    """What every happening of one change shares: where, when, and which delivery."""

    location_id: str
    at: datetime | None
    correlation_id: UUID
    webhook_event_id: int


def happenings(
    parsed: ParsedEvent, *, correlation_id: UUID, webhook_event_id: int
) -> list[Happening]:
    """Every happening in one applied delivery."""
    found: list[Happening] = []
    for change in parsed.changes:
        common: _Delivered = {
            "location_id": change.location_id,
            "at": change.source_updated_at,
            "correlation_id": correlation_id,
            "webhook_event_id": webhook_event_id,
        }
        if change.entity == "appointment":
            found.extend(_appointment(change, parsed.event_type, common))
        elif change.entity == "message":
            found.extend(_inbound(change, common))
        elif change.entity == "contact" and change.columns.get("dnd") is True:
            found.append(Happening("opted_out", contact_id=change.entity_id, **common))
    return found


def _appointment(change: EntityChange, event_type: str, common: _Delivered) -> list[Happening]:
    contact_id = change.columns.get("contact_id")
    if not contact_id:
        return []
    status = change.columns.get("status")
    if change.deleted:
        kind: Kind = "deleted"
    elif status == "noshow":
        kind = "no_show"
    elif status == "cancelled":
        kind = "cancelled"
    elif event_type == "AppointmentCreate" and status in ("new", "confirmed", "active", None):
        kind = "booked"
    else:
        kind = "updated"
    return [
        Happening(
            kind,
            contact_id=contact_id,
            appointment_id=change.entity_id,
            start_time=change.columns.get("start_time"),
            **common,
        )
    ]


def _inbound(change: EntityChange, common: _Delivered) -> list[Happening]:
    body = change.payload.get("body")
    contact_id = change.columns.get("contact_id")
    if change.columns.get("direction") != "inbound" or not contact_id or not isinstance(body, str):
        return []
    if not body.strip():
        return []
    sent: _Delivered = {**common, "at": change.columns.get("date_added") or common["at"]}
    return [
        Happening(
            "inbound",
            contact_id=contact_id,
            message_id=change.entity_id,
            text=body,
            channel=change.columns.get("message_type"),
            **sent,
        )
    ]
