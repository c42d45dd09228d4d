"""GHL webhook bodies turned into typed changes to the raw tables (pure: no database, no Dagster).

Three rules hold for every shape GHL sends:
- A delivery sets only the fields it carries. GHL's partial events (a DND change, a tag change)
  and workflow bodies never blank the rest of a record; a field that cannot be read (a time in
  an unknown format) is skipped and the delivery flagged, never rejected whole. A REST record
  from a pull is the exception: it is a complete snapshot, so a field it lacks is empty.
- A delivery's time is its source time (`dateUpdated`, or `dateAdded` for a create), else
  GHL's signed delivery `timestamp` (contact events carry no `dateUpdated`). A delivery with
  neither (workflow bodies) is undated: it only fills fields nobody has set (see `ingest.apply`).
- When the declared `type` and the payload's shape disagree (GHL's own examples get it wrong)
  the shape wins and the event is flagged. A type TrainU does not know yet is not guessed at:
  the event is kept as `unknown` until a parser exists for it.

One module per entity (`contacts`, `appointments`, `messages`, `opportunities`,
`notes_and_tasks`) around one shared `reader`; `shapes` decides the entity, `marketplace` and
`workflow` parse the two routes, `envelope` is the receiver's landing record. What callers
use is exported here.
"""

from trainu_dagster.ghl.payloads.envelope import Envelope, envelope
from trainu_dagster.ghl.payloads.events import (
    EVENT_ENTITIES,
    Entity,
    EntityChange,
    OptOut,
    ParsedEvent,
    Route,
    UnparseableEvent,
)
from trainu_dagster.ghl.payloads.parse import parse_event
from trainu_dagster.ghl.payloads.times import parse_timestamp

__all__ = [
    "EVENT_ENTITIES",
    "Entity",
    "EntityChange",
    "Envelope",
    "OptOut",
    "ParsedEvent",
    "Route",
    "UnparseableEvent",
    "envelope",
    "parse_event",
    "parse_timestamp",
]
