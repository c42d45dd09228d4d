"""Turn landed webhook deliveries into raw entity state, one savepoint per event.

A failing event (unparseable, unknown type, a constraint error, a bug in a parser) is
rolled back alone, marked `failed` and handed to the dead-letter queue; the rest of the
batch goes on. Rows are claimed with SKIP LOCKED, so two runs over overlapping ranges
never process the same event twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row

from trainu_dagster.ghl.webhook_payloads import ParsedEvent, parse_event
from trainu_dagster.ingest import dlq
from trainu_dagster.ingest.apply import apply_changes, record_opt_outs
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.logging import bind_correlation_id, get_logger
from trainu_dagster.observability.product_events import emit_event

log = get_logger(__name__)


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
    processed: int = 0
    flagged: int = 0
    failed: int = 0
    applied: int = 0
    stale: int = 0
    by_entity: Counter[str] = field(default_factory=Counter)
    by_location: Counter[str] = field(default_factory=Counter)
    correlation_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Batch:
    min_id: int
    max_id: int
    correlation_ids: tuple[str, ...]


SELECT_EVENT = """
SELECT id, location_id, route, payload, received_at, correlation_id, status
FROM raw.webhook_events
"""


def plan_batches(
    conn: psycopg.Connection, *, after_id: int, batch_size: int = 100, max_batches: int = 20
) -> list[Batch]:
    """Consecutive id ranges of pending events after the cursor, at most `batch_size` each."""
    rows = conn.execute(
        """SELECT id, correlation_id FROM raw.webhook_events
           WHERE id > %s AND status = 'pending' ORDER BY id LIMIT %s""",
        (after_id, batch_size * max_batches),
    ).fetchall()
    return [
        Batch(chunk[0][0], chunk[-1][0], tuple(str(c) for _, c in chunk))
        for chunk in (rows[i : i + batch_size] for i in range(0, len(rows), batch_size))
    ]


def stragglers(
    conn: psycopg.Connection, *, up_to_id: int, older_than_seconds: int = 60
) -> Batch | None:
    """Pending events at or below the cursor: committed late, or left by a failed run."""
    row = conn.execute(
        """SELECT min(id), max(id), array_agg(correlation_id::text ORDER BY id)
           FROM (SELECT id, correlation_id FROM raw.webhook_events
                 WHERE id <= %s AND status = 'pending'
                   AND received_at < now() - make_interval(secs => %s)
                 ORDER BY id LIMIT 100) AS s""",
        (up_to_id, older_than_seconds),
    ).fetchone()
    if row is None or row[0] is None:
        return None
    return Batch(row[0], row[1], tuple(row[2]))


def process_event(
    conn: psycopg.Connection, event: WebhookEvent, payload: dict[str, Any] | None = None
) -> ParsedEvent:
    """Parse and apply one event, then mark it; raises on any failure (caller decides)."""
    parsed = parse_event(payload or event.payload, route=event.route, received_at=event.received_at)  # type: ignore[arg-type]
    result = apply_changes(
        conn,
        parsed.changes,
        source="webhook",
        webhook_event_id=event.id,
        correlation_id=event.correlation_id,
    )
    record_opt_outs(
        conn, parsed.opt_outs, webhook_event_id=event.id, correlation_id=event.correlation_id
    )
    conn.execute(
        """UPDATE raw.webhook_events SET status = %s, processed_at = now(), error = %s
           WHERE id = %s""",
        ("flagged" if parsed.flag else "processed", parsed.flag, event.id),
    )
    log.info(
        "webhook_processed",
        event_id=event.id,
        event_type=parsed.event_type,
        applied=result.applied,
        stale=result.stale,
        flag=parsed.flag,
    )
    return parsed


def process_pending(
    conn: psycopg.Connection, *, min_id: int, max_id: int, now: datetime | None = None
) -> IngestSummary:
    """Process every still-pending event in [min_id, max_id]; the caller commits."""
    now = now or datetime.now(UTC)
    summary = IngestSummary()
    with conn.cursor(row_factory=class_row(WebhookEvent)) as cur:
        events = cur.execute(
            SELECT_EVENT
            + """WHERE id BETWEEN %s AND %s AND status = 'pending'
                              ORDER BY id FOR UPDATE SKIP LOCKED""",
            (min_id, max_id),
        ).fetchall()
    for event in events:
        summary.correlation_ids.append(str(event.correlation_id))
        with bind_correlation_id(event.correlation_id):
            try:
                with conn.transaction():
                    parsed = process_event(conn, event)
            except Exception as exc:  # noqa: BLE001 - any failure goes to the DLQ, never lost
                _fail(conn, event, exc, now)
                summary.failed += 1
                continue
        summary.processed += 1
        summary.flagged += parsed.flag is not None
        summary.by_location[event.location_id or "unknown"] += 1
        for change in parsed.changes:
            summary.by_entity[change.entity] += 1
    for location, count in summary.by_location.items():
        emit_event(
            conn,
            "sync_ok",
            actor="system:ingest",
            analytics=configured_analytics(),
            location_id=location,
            properties={"source": "webhook", "events": count, "range": [min_id, max_id]},
        )
    return summary


def _fail(conn: psycopg.Connection, event: WebhookEvent, exc: Exception, now: datetime) -> None:
    log.warning("webhook_failed", event_id=event.id, error_class=type(exc).__name__, error=str(exc))
    conn.execute(
        "UPDATE raw.webhook_events SET status = 'failed', error = %s WHERE id = %s",
        (f"{type(exc).__name__}: {exc}", event.id),
    )
    dlq.enqueue(conn, event=event, error=exc, now=now)


def load_event(conn: psycopg.Connection, event_id: int, *, lock: bool = False) -> WebhookEvent:
    with conn.cursor(row_factory=class_row(WebhookEvent)) as cur:
        event = cur.execute(
            SELECT_EVENT + "WHERE id = %s" + (" FOR UPDATE" if lock else ""), (event_id,)
        ).fetchone()
    if event is None:
        raise LookupError(f"no webhook event {event_id}")
    return event
