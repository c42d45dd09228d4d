"""The parser's entry point: a landed delivery, by its route, to raw-table changes."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, tzinfo
from typing import Any

from trainu_dagster.ghl.payloads.events import ParsedEvent, Route, UnparseableEvent
from trainu_dagster.ghl.payloads.marketplace import parse_marketplace
from trainu_dagster.ghl.payloads.reader import Reader, is_map
from trainu_dagster.ghl.payloads.workflow import parse_workflow


def parse_event(
    payload: Mapping[str, Any],
    *,
    route: Route,
    received_at: datetime,
    timezone: tzinfo = UTC,
    snapshot: bool = False,
) -> ParsedEvent:
    """Classify a landed webhook and turn it into raw-table changes and opt-outs.

    `timezone` is the studio's, for local times that carry no offset. `snapshot` marks a
    complete REST record (pulls): fields it lacks are empty, and one without a time of its
    own is dated at `received_at`. A delivery's `received_at` dates only what must have a
    time and carries none at all: a delete (a tombstone needs one) and an opt-out.
    """
    if not is_map(payload):
        raise UnparseableEvent(f"payload is a {type(payload).__name__}, not a JSON object")
    received = (received_at if received_at.tzinfo else received_at.replace(tzinfo=UTC)).astimezone(
        UTC
    )
    reader = Reader(zone=timezone, snapshot=snapshot)
    if route == "workflow":
        return parse_workflow(payload, reader)
    if route == "marketplace":
        return parse_marketplace(payload, reader, received)
    raise UnparseableEvent(f"unknown webhook route {route!r}")
