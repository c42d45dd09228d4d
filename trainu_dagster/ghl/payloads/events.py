"""GHL's webhook event types and what parsing one delivery yields.

The types every other payload module shares, kept apart so the entity modules, the parser
and its callers (ingest applies the changes, messaging reads the happenings) name one set.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

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


class UnparseableEvent(ValueError):
    """The event cannot be classified at all; it belongs in the dead-letter queue."""


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
