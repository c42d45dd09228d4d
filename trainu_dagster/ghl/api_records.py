"""REST API records turned into the same typed changes as webhooks (pure).

A pulled record is restated as the Marketplace event GHL would have sent for it and parsed
by the webhook parser, so both sources share one set of rules (timestamps, statuses,
opt-outs, ids) and a pull and a webhook for the same state write the same columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from trainu_dagster.ghl.payloads import ParsedEvent, parse_event

Stream = Literal["contacts", "appointments", "messages", "opportunities"]
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def contact_event(location_id: str, contact: Mapping[str, Any]) -> dict[str, Any]:
    return {**contact, "type": "ContactUpdate", "locationId": location_id}


def appointment_event(location_id: str, event: Mapping[str, Any]) -> dict[str, Any]:
    return {"type": "AppointmentUpdate", "locationId": location_id, "appointment": dict(event)}


def message_event(location_id: str, message: Mapping[str, Any]) -> dict[str, Any]:
    """The export's `type` is a numeric channel code, not an event name: rebuild the body."""
    direction = message.get("direction")
    fields = ("conversationId", "contactId", "body", "direction", "messageType", "status",
              "contentType", "attachments", "dateAdded", "dateUpdated", "userId")  # fmt: skip
    return {
        "type": "InboundMessage" if direction == "inbound" else "OutboundMessage",
        "locationId": location_id,
        "messageId": message.get("id"),
        **{k: message[k] for k in fields if k in message},
    }


def opportunity_event(location_id: str, opportunity: Mapping[str, Any]) -> dict[str, Any]:
    contact = opportunity.get("contact")
    contact_id = opportunity.get("contactId") or (
        contact.get("id") if isinstance(contact, Mapping) else None
    )
    return {
        **opportunity,
        "type": "OpportunityUpdate",
        "locationId": location_id,
        "contactId": contact_id,
        "dateAdded": opportunity.get("createdAt"),
        "dateUpdated": opportunity.get("updatedAt"),
    }


EVENT_BUILDERS = {
    "contacts": contact_event,
    "appointments": appointment_event,
    "messages": message_event,
    "opportunities": opportunity_event,
}


def parse_record(stream: Stream, location_id: str, record: Mapping[str, Any]) -> ParsedEvent:
    """A REST record is a complete snapshot: a field it lacks is empty. One without its own
    update time is dated at the epoch, so it never outranks a webhook that carried a real
    time, yet still replaces what an undated workflow body filled in (pulls reconcile)."""
    event = EVENT_BUILDERS[stream](location_id, record)
    return parse_event(event, route="marketplace", received_at=EPOCH, snapshot=True)
