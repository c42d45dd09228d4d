"""Retrying and repairing dead-letter items: the same processing path as first time.

Both the item and its webhook event are locked for the attempt, and an event that is
already processed is never applied again, so an automatic retry racing a manual repair
still processes the event exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import psycopg

from trainu_dagster.ingest import dlq
from trainu_dagster.ingest.process import load_event, process_event
from trainu_dagster.observability.logging import bind_correlation_id, get_logger

log = get_logger(__name__)

Outcome = Literal["repaired", "retrying", "dead", "skipped"]


class RepairFailed(Exception):
    pass


@dataclass(frozen=True)
class RetryReport:
    item_id: int
    outcome: Outcome
    error: str | None = None


def _attempt(
    conn: psycopg.Connection,
    item: dlq.QueueItem,
    *,
    by: str,
    now: datetime,
    payload: dict[str, Any] | None,
) -> RetryReport:
    if item.source != "webhook" or item.webhook_event_id is None:
        raise RepairFailed(f"item {item.id} came from a {item.source}; the next pull retries it")
    event = load_event(conn, item.webhook_event_id, lock=True)
    if event.status in ("processed", "flagged"):
        dlq.mark_resolved(conn, item, by=by, note="event already processed", now=now)
        return RetryReport(item.id, "repaired")
    payload = payload or item.payload_ref.get("repaired_payload")
    with bind_correlation_id(event.correlation_id):
        try:
            with conn.transaction():
                process_event(conn, event, payload)
        except Exception as exc:  # noqa: BLE001 - the failure is recorded on the item
            status = dlq.mark_failed_attempt(conn, item, exc, now=now, by=by)
            log.warning("dlq_attempt_failed", item_id=item.id, status=status, error=str(exc))
            return RetryReport(item.id, status, f"{type(exc).__name__}: {exc}")  # type: ignore[arg-type]
    dlq.mark_resolved(conn, item, by=by, note="processed on retry", now=now)
    log.info("dlq_item_repaired", item_id=item.id, by=by)
    return RetryReport(item.id, "repaired")


def retry_item(
    conn: psycopg.Connection,
    item_id: int,
    *,
    by: str = "system:dlq-retry",
    now: datetime | None = None,
) -> RetryReport:
    """One scheduled attempt; items that are dead or resolved are left alone."""
    item = dlq.get(conn, item_id, lock=True)
    if item.status not in ("pending", "retrying"):
        return RetryReport(item.id, "skipped")
    return _attempt(conn, item, by=by, now=now or datetime.now(UTC), payload=None)


def retry_due(
    conn: psycopg.Connection, *, now: datetime | None = None, limit: int = 100
) -> list[RetryReport]:
    """Attempt every due item, each in its own transaction so one failure costs nothing else."""
    now = now or datetime.now(UTC)
    reports = []
    for item_id, _ in dlq.due_ids(conn, now=now, limit=limit):
        with conn.transaction():
            reports.append(retry_item(conn, item_id, now=now))
    return reports


def repair(
    conn: psycopg.Connection,
    item_id: int,
    *,
    by: str,
    payload: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> RetryReport:
    """Manual repair after a code or data fix; works on dead items too.

    A failed repair is recorded like any attempt (the caller should commit either way).
    """
    now = now or datetime.now(UTC)
    item = dlq.get(conn, item_id, lock=True)
    if item.status not in dlq.OPEN_STATUSES:
        raise RepairFailed(f"item {item_id} is already {item.status}")
    if payload is not None:
        dlq.remember_repair_payload(conn, item, payload)
        item = dlq.get(conn, item_id, lock=True)
    return _attempt(conn, item, by=by, now=now, payload=payload)


def discard(
    conn: psycopg.Connection, item_id: int, *, by: str, reason: str, now: datetime | None = None
) -> None:
    item = dlq.get(conn, item_id, lock=True)
    if item.status not in dlq.OPEN_STATUSES:
        raise RepairFailed(f"item {item_id} is already {item.status}")
    dlq.mark_resolved(
        conn, item, by=by, note=reason, now=now or datetime.now(UTC), status="discarded"
    )
