"""The dead-letter queue (`ops.sync_queue`): state and backoff, nothing else.

pending ──fail──► retrying ──fail × max_attempts──► dead ──repair──► repaired
   └──────────────────success──────────────────────────────────────► repaired
                                         any open item ──discard──► discarded
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.rows import class_row
from psycopg.types.json import Jsonb

from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.product_events import emit_event

BASE_DELAY = timedelta(seconds=30)
MAX_DELAY = timedelta(hours=6)
OPEN_STATUSES = ("pending", "retrying", "dead")


class FailedEvent(Protocol):
    """What the queue needs of a failed event (read-only, as a frozen event gives it)."""

    @property
    def id(self) -> int: ...
    @property
    def location_id(self) -> str | None: ...
    @property
    def correlation_id(self) -> UUID: ...


@dataclass(frozen=True)
class QueueItem:
    id: int
    location_id: str | None
    source: str
    webhook_event_id: int | None
    payload_ref: dict[str, Any]
    error_class: str
    error: str
    attempts: int
    max_attempts: int
    next_attempt_at: datetime | None
    status: str
    correlation_id: UUID | None
    created_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None
    resolution_note: str | None


def backoff(attempts: int, *, rng: random.Random | None = None) -> timedelta:
    """Exponential backoff with "equal jitter": half fixed, half random, capped."""
    factor: int = 2 ** max(attempts - 1, 0)
    ceiling = min(MAX_DELAY, BASE_DELAY * factor)
    return ceiling / 2 + (ceiling / 2) * (rng or random).random()


def enqueue(
    conn: psycopg.Connection, *, event: FailedEvent, error: Exception, now: datetime
) -> int | None:
    """Open an item for a failed webhook event (the failure is attempt 1)."""
    row = conn.execute(
        """INSERT INTO ops.sync_queue (location_id, source, webhook_event_id, error_class, error,
                                       attempts, next_attempt_at, correlation_id)
           VALUES (%s, 'webhook', %s, %s, %s, 1, %s, %s)
           ON CONFLICT (webhook_event_id) WHERE status IN ('pending', 'retrying', 'dead')
           DO NOTHING RETURNING id""",
        (
            event.location_id,
            event.id,
            type(error).__name__,
            str(error),
            now + backoff(1),
            event.correlation_id,
        ),
    ).fetchone()
    if row is not None:
        emit_event(
            conn,
            "sync_retry",
            actor="system:ingest",
            analytics=configured_analytics(),
            location_id=event.location_id,
            entity_type="sync_queue",
            entity_id=str(row[0]),
            correlation_id=event.correlation_id,
            properties={"attempts": 1, "error_class": type(error).__name__},
        )
    return row[0] if row else None


def get(conn: psycopg.Connection, item_id: int, *, lock: bool = False) -> QueueItem:
    with conn.cursor(row_factory=class_row(QueueItem)) as cur:
        query = sql.SQL("SELECT * FROM ops.sync_queue WHERE id = %s{}").format(
            sql.SQL(" FOR UPDATE" if lock else "")
        )
        item = cur.execute(query, (item_id,)).fetchone()
    if item is None:
        raise LookupError(f"no dead-letter item {item_id}")
    return item


def list_items(conn: psycopg.Connection, *, status: str | None = None) -> list[QueueItem]:
    with conn.cursor(row_factory=class_row(QueueItem)) as cur:
        return cur.execute(
            """SELECT * FROM ops.sync_queue WHERE %(status)s::text IS NULL OR status = %(status)s
               ORDER BY id""",
            {"status": status},
        ).fetchall()


def due_ids(conn: psycopg.Connection, *, now: datetime, limit: int = 100) -> list[tuple[int, int]]:
    """(id, attempts) of items whose next attempt is due."""
    return conn.execute(
        """SELECT id, attempts FROM ops.sync_queue
           WHERE status IN ('pending', 'retrying') AND next_attempt_at <= %s
           ORDER BY next_attempt_at, id LIMIT %s""",
        (now, limit),
    ).fetchall()


def mark_resolved(
    conn: psycopg.Connection,
    item: QueueItem,
    *,
    by: str,
    note: str | None,
    now: datetime,
    status: str = "repaired",
) -> None:
    conn.execute(
        """UPDATE ops.sync_queue SET status = %s, resolved_at = %s, resolved_by = %s,
                  resolution_note = %s, next_attempt_at = NULL, updated_at = %s
           WHERE id = %s""",
        (status, now, by, note, now, item.id),
    )
    event = "sync_ok" if status == "repaired" else "sync_discarded"
    _item_event(conn, item, event, by=by, properties={"attempts": item.attempts, "note": note})


def mark_failed_attempt(
    conn: psycopg.Connection, item: QueueItem, error: Exception, *, now: datetime, by: str
) -> str:
    """Count the attempt; schedule the next one or declare the item dead. Returns the status."""
    attempts = item.attempts + 1
    dead = attempts >= item.max_attempts
    status = "dead" if dead else "retrying"
    conn.execute(
        """UPDATE ops.sync_queue SET attempts = %s, status = %s, next_attempt_at = %s,
                  error_class = %s, error = %s, updated_at = %s
           WHERE id = %s""",
        (
            attempts,
            status,
            None if dead else now + backoff(attempts),
            type(error).__name__,
            str(error),
            now,
            item.id,
        ),
    )
    _item_event(
        conn,
        item,
        "sync_dead" if dead else "sync_retry",
        by=by,
        properties={"attempts": attempts, "error_class": type(error).__name__},
    )
    return status


def _item_event(
    conn: psycopg.Connection, item: QueueItem, event: str, *, by: str, properties: dict[str, Any]
) -> None:
    emit_event(
        conn,
        event,
        actor=by,
        analytics=configured_analytics(),
        location_id=item.location_id,
        entity_type="sync_queue",
        entity_id=str(item.id),
        correlation_id=item.correlation_id,
        properties=properties,
    )


def remember_repair_payload(
    conn: psycopg.Connection, item: QueueItem, payload: dict[str, Any]
) -> None:
    """A corrected payload is kept beside the item; the delivery as received stays untouched."""
    conn.execute(
        "UPDATE ops.sync_queue SET payload_ref = payload_ref || %s WHERE id = %s",
        (Jsonb({"repaired_payload": payload}), item.id),
    )
