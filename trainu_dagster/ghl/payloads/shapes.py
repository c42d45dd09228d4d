"""Which entity a Marketplace body is about, when its declared `type` cannot be trusted.

GHL's `type` is not always right (its own examples get it wrong) and some bodies carry
none. The payload's shape is harder to get wrong, so when the two disagree the shape wins
and the event is flagged for a human.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainu_dagster.ghl.payloads.events import EVENT_ENTITIES, Entity, UnparseableEvent
from trainu_dagster.ghl.payloads.reader import is_map, text

# Keys only one kind of entity carries: they decide the shape whatever `type` says.
MESSAGE_KEYS = ("direction", "messageType", "conversationId")
OPPORTUNITY_KEYS = ("pipelineId", "pipelineStageId", "monetaryValue")
CONTACT_KEYS = ("firstName", "lastName", "email", "phone", "dnd", "dndSettings", "tags")


def classify(payload: Mapping[str, Any], declared: str | None) -> tuple[Entity, str, str | None]:
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
    if is_map(payload.get("appointment")):
        return "appointment"
    if any(key in payload for key in MESSAGE_KEYS):
        return "message"
    if any(key in payload for key in OPPORTUNITY_KEYS):
        return "opportunity"
    return None


def _weak_shape(payload: Mapping[str, Any]) -> Entity | None:
    if not text(payload.get("id")):
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
