"""Messages (Inbound/OutboundMessage): their direction, their id, and a STOP reply's opt-out.

The payload's `direction` decides inbound vs outbound whatever `type` claims (an inbound
call can come labelled OutboundMessage). A message without GHL's `messageId` gets one derived
from its content, so redeliveries land on one row. An inbound STOP reply is an opt-out from
the moment it arrives, by the rule messaging reads replies with (`ghl.opt_out`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from trainu_dagster.ghl.opt_out import is_opt_out
from trainu_dagster.ghl.payloads.events import EntityChange, OptOut, UnparseableEvent
from trainu_dagster.ghl.payloads.reader import (
    FieldSpec,
    Reader,
    entity_payload,
    source_time,
    text,
    text_field,
    time_field,
)
from trainu_dagster.ghl.payloads.times import parse_timestamp

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
MESSAGE_FIELDS: FieldSpec = {
    "conversation_id": ("conversationId", text_field, None),
    "contact_id": ("contactId", text_field, None),
    "status": ("status", text_field, None),
    "date_added": ("dateAdded", time_field, None),
}


def resolve_direction(
    payload: Mapping[str, Any], event_type: str
) -> tuple[str, str | None, str | None]:
    """The payload's `direction` decides Inbound vs Outbound, whatever `type` claims."""
    found = read_direction(payload.get("direction"))
    declared = {"InboundMessage": "inbound", "OutboundMessage": "outbound"}.get(event_type)
    if found is None:
        if declared is None:
            return event_type, None, "message without a direction"
        return event_type, declared, None
    resolved = "InboundMessage" if found == "inbound" else "OutboundMessage"
    if declared is not None and declared != found:
        return resolved, found, f"declared {event_type} but direction is {found}"
    return resolved, found, None


def message_change(
    p: Mapping[str, Any], location_id: str, direction: str | None, reader: Reader
) -> EntityChange:
    """Messages are dated by `dateUpdated` or the delivery, not `dateAdded`: a status update
    (sent, then delivered) keeps the message's `dateAdded`, and must still come out on top."""
    if not any(text(p.get(key)) for key in ("messageId", "conversationId", "contactId")):
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
        entity_id=message_id(p, direction),
        source_updated_at=source_time(p, "Message", p, reader),
        deleted=False,
        columns=columns,
        payload=entity_payload(p),
    )


def message_id(p: Mapping[str, Any], direction: str | None) -> str:
    """GHL's messageId, or one derived from the content so redeliveries land on one row."""
    given = text(p.get("messageId"))
    if given:
        return given
    try:
        added = parse_timestamp(p.get("dateAdded"))
    except ValueError:
        added = None
    stamp = added.isoformat() if added else p.get("dateAdded")
    parts = (p.get("conversationId"), p.get("contactId"), stamp, direction, p.get("body"))
    joined = "\x1f".join("" if part is None else str(part) for part in parts)
    return "derived-" + hashlib.sha256(joined.encode()).hexdigest()[:24]


def read_direction(value: Any) -> str | None:
    found = value.strip().lower() if isinstance(value, str) else None
    return found if found in ("inbound", "outbound") else None


def declared_direction(payload: Mapping[str, Any]) -> str | None:
    declared = text(payload.get("type"))
    return {"InboundMessage": "inbound", "OutboundMessage": "outbound"}.get(declared or "")


def _message_type(value: Any) -> str | None:
    name = text(value)
    if name is None or not name.startswith("TYPE_"):
        return name
    return MESSAGE_TYPES.get(name, name.removeprefix("TYPE_"))


def stop_reply(change: EntityChange, received_at: datetime) -> tuple[OptOut, ...]:
    contact_id = change.columns.get("contact_id")
    body = change.payload.get("body")
    if change.columns.get("direction") != "inbound" or not contact_id or not isinstance(body, str):
        return ()
    if not is_opt_out(body):  # the same rule drafting and the CLI use
        return ()
    occurred_at = change.columns.get("date_added") or change.source_updated_at or received_at
    channel = change.columns.get("message_type")
    return (OptOut(change.location_id, contact_id, "stop_reply", channel, occurred_at),)


def opt_out_changes(change: EntityChange, opt_outs: tuple[OptOut, ...]) -> tuple[EntityChange, ...]:
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
