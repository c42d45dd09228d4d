"""Turn landed webhook deliveries into raw entity state, a batch at a time.

Pending deliveries are claimed oldest first with SKIP LOCKED (two runs never process one
twice), parsed, and applied together: one set-based merge per table for the whole batch.
Should the batch fail in the database (a constraint error), it is applied again one
delivery at a time, each in its own savepoint, so only the culprit fails: it is marked
`failed` and handed to the dead-letter queue while the rest goes on. A delivery of a type
TrainU cannot parse yet is kept as `unknown`: not a failure, and `reprocess` applies it
once a parser exists.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg.rows import class_row

from trainu_dagster.ghl.payloads import ParsedEvent, parse_event
from trainu_dagster.ingest import dlq
from trainu_dagster.ingest.apply import (
    Origin,
    apply_delivered,
    record_delivered_opt_outs,
)
from trainu_dagster.observability.logging import bind_correlation_id, get_logger

log = get_logger(__name__)
BATCH_SIZE = 500
# The database went away: no delivery is at fault, so none is failed into the DLQ.
LOST_CONNECTION = (psycopg.OperationalError, psycopg.InterfaceError)


@dataclass(frozen=True)
class WebhookEvent:
    id: int
    location_id: str | None
    route: str
    payload: dict[str, Any]
    received_at: datetime
    correlation_id: UUID
    status: str


@dataclass
class IngestSummary:
    claimed: int = 0
    last_id: int = 0  # the newest delivery claimed
    processed: int = 0
    flagged: int = 0
    unknown: int = 0
    failed: int = 0
    applied: int = 0
    stale: int = 0
    by_entity: Counter[str] = field(default_factory=Counter)
    by_location: Counter[str] = field(default_factory=Counter)
    # this batch's applied deliveries, for what reacts to them (drafting); not summed by add
    delivered: list[tuple[WebhookEvent, ParsedEvent]] = field(default_factory=list)

    def add(self, other: IngestSummary) -> None:
        for name in ("claimed", "processed", "flagged", "unknown", "failed", "applied", "stale"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.last_id = max(self.last_id, other.last_id)
        self.by_entity.update(other.by_entity)
        self.by_location.update(other.by_location)


SELECT_EVENT = """
SELECT id, location_id, route, payload, received_at, correlation_id, status
FROM raw.webhook_events
"""
# clock_timestamp(): when the batch was applied, not when its transaction began.
MARK_EVENTS = """
UPDATE raw.webhook_events AS w
SET status = m.status, processed_at = clock_timestamp(), error = m.error
FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS m (id, status, error)
WHERE w.id = m.id
"""


def process_pending(
    conn: psycopg.Connection,
    *,
    limit: int = BATCH_SIZE,
    status: str = "pending",
    event_type: str | None = None,
    after_id: int = 0,
    now: datetime | None = None,
) -> IngestSummary:
    """Claim and process up to `limit` deliveries in `status` (oldest first, after
    `after_id`, optionally of one `event_type`); the caller commits."""
    now = now or datetime.now(UTC)
    with conn.cursor(row_factory=class_row(WebhookEvent)) as cur:
        events = cur.execute(
            SELECT_EVENT
            + """WHERE status = %(status)s AND id > %(after)s
                   AND (%(type)s::text IS NULL OR event_type = %(type)s)
                 ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED""",
            {"status": status, "after": after_id, "type": event_type, "limit": limit},
        ).fetchall()
    summary = IngestSummary(claimed=len(events), last_id=max((e.id for e in events), default=0))
    if not events:
        return summary
    zones = studio_timezones(conn, {e.location_id for e in events if e.location_id})
    parsed: list[tuple[WebhookEvent, ParsedEvent]] = []
    for event in events:
        try:
            parsed.append((event, _parse(event, event.payload, zones)))
        except Exception as exc:  # noqa: BLE001 - unparseable or a parser bug: DLQ, never lost
            _fail(conn, event, exc, now, summary)
    try:
        with conn.transaction():
            _apply(conn, parsed, summary)
    except LOST_CONNECTION:
        raise  # nothing is wrong with the deliveries: they stay pending for the next run
    except Exception as exc:  # noqa: BLE001 - find the culprit, one delivery at a time
        log.warning("webhook_batch_failed", events=len(parsed), error=str(exc))
        for event, result in parsed:
            try:
                with conn.transaction():
                    _apply(conn, [(event, result)], summary)
            except LOST_CONNECTION:
                raise
            except Exception as one:  # noqa: BLE001 - this delivery goes to the DLQ
                _fail(conn, event, one, now, summary)
    return summary


def reprocess_unknown(conn: psycopg.Connection, event_type: str) -> IngestSummary:
    """Parse again every delivery of `event_type` kept as unknown, once a parser exists;
    each batch commits on its own. Deliveries still unknown stay so, counted."""
    total = IngestSummary()
    while True:
        with conn.transaction():
            batch = process_pending(
                conn, status="unknown", event_type=event_type, after_id=total.last_id
            )
        if not batch.claimed:
            return total
        total.add(batch)


def delivery_counts(conn: psycopg.Connection) -> list[tuple[str, str | None, int]]:
    """(status, event type, deliveries): what `trainu webhooks status` shows."""
    return conn.execute(
        """SELECT status, event_type, count(*) FROM raw.webhook_events
           GROUP BY 1, 2 ORDER BY 1, 3 DESC, 2"""
    ).fetchall()


def process_event(
    conn: psycopg.Connection, event: WebhookEvent, payload: dict[str, Any] | None = None
) -> ParsedEvent:
    """Parse and apply one delivery (a dead-letter retry or repair); raises on any failure."""
    zones = studio_timezones(conn, {event.location_id} if event.location_id else set())
    parsed = _parse(event, payload or event.payload, zones)
    _apply(conn, [(event, parsed)], IngestSummary())
    return parsed


def studio_timezones(conn: psycopg.Connection, location_ids: set[str]) -> dict[str, tzinfo]:
    """Each studio's timezone, for local times a delivery sends without an offset."""
    rows = conn.execute(
        "SELECT location_id, timezone FROM app.locations WHERE location_id = ANY(%s)",
        (list(location_ids),),
    ).fetchall()
    zones: dict[str, tzinfo] = {}
    for location_id, name in rows:
        try:
            zones[location_id] = ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            log.warning("studio_timezone_unknown", location_id=location_id, timezone=name)
    return zones


def _parse(event: WebhookEvent, payload: dict[str, Any], zones: dict[str, tzinfo]) -> ParsedEvent:
    return parse_event(
        payload,
        route=event.route,  # type: ignore[arg-type]
        received_at=event.received_at,
        timezone=zones.get(event.location_id or "", UTC),
    )


def _apply(
    conn: psycopg.Connection,
    batch: list[tuple[WebhookEvent, ParsedEvent]],
    summary: IngestSummary,
) -> None:
    """Apply parsed deliveries and mark them, all in the caller's transaction."""
    origins = {event.id: Origin(event.id, event.correlation_id) for event, _ in batch}
    result = apply_delivered(
        conn,
        ((change, origins[event.id]) for event, parsed in batch for change in parsed.changes),
        source="webhook",
    )
    record_delivered_opt_outs(
        conn,
        ((opt_out, origins[event.id]) for event, parsed in batch for opt_out in parsed.opt_outs),
    )
    statuses = [_status(parsed) for _, parsed in batch]
    conn.execute(
        MARK_EVENTS,
        ([event.id for event, _ in batch], statuses, [parsed.flag for _, parsed in batch]),
    )
    summary.applied += result.applied
    summary.stale += result.stale
    summary.delivered.extend(batch)
    for (event, parsed), status in zip(batch, statuses, strict=True):
        summary.processed += status != "unknown"
        summary.flagged += status == "flagged"
        summary.unknown += status == "unknown"
        summary.by_location[event.location_id or "unknown"] += 1
        summary.by_entity.update(change.entity for change in parsed.changes)
        with bind_correlation_id(event.correlation_id):
            log.info(
                "webhook_processed",
                event_id=event.id,
                event_type=parsed.event_type,
                status=status,
                flag=parsed.flag,
            )


def _status(parsed: ParsedEvent) -> str:
    if parsed.unknown:
        return "unknown"
    return "flagged" if parsed.flag else "processed"


def _fail(
    conn: psycopg.Connection,
    event: WebhookEvent,
    exc: Exception,
    now: datetime,
    summary: IngestSummary,
) -> None:
    with bind_correlation_id(event.correlation_id):
        log.warning(
            "webhook_failed", event_id=event.id, error_class=type(exc).__name__, error=str(exc)
        )
    conn.execute(
        "UPDATE raw.webhook_events SET status = 'failed', error = %s WHERE id = %s",
        (f"{type(exc).__name__}: {exc}", event.id),
    )
    dlq.enqueue(conn, event=event, error=exc, now=now)
    summary.failed += 1


def load_event(conn: psycopg.Connection, event_id: int, *, lock: bool = False) -> WebhookEvent:
    with conn.cursor(row_factory=class_row(WebhookEvent)) as cur:
        event = cur.execute(
            SELECT_EVENT + "WHERE id = %s" + (" FOR UPDATE" if lock else ""), (event_id,)
        ).fetchone()
    if event is None:
        raise LookupError(f"no webhook event {event_id}")
    return event
