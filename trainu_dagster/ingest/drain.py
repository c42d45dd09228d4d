"""Keep applying webhook deliveries as they land, for a bounded time.

Starting a run costs seconds, so one run serves a stream of deliveries: it applies
everything pending, then waits on Postgres's `LISTEN trainu_webhook_events` (the receiver
notifies once a batch is durable) and applies what arrives, within moments of its commit.
It stops after `max_seconds`, or sooner when nothing has landed for `idle_seconds`; the
webhook sensor keeps a successor queued while deliveries flow, so the number of runs grows
with time, not with traffic. Progress is reported every `report_seconds`: the caller turns it into
Dagster materializations, which is what refreshes the models downstream. After each batch
commits, `after_batch` (drafting) reacts to it in a transaction of its own, so what a
delivery triggers happens within seconds, and a failure there never undoes a delivery.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from trainu_dagster.db.notifications import await_notification, listen
from trainu_dagster.ingest.landing import LANDED_CHANNEL
from trainu_dagster.ingest.process import BATCH_SIZE, IngestSummary, process_pending
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.logging import get_logger
from trainu_dagster.observability.product_events import emit_event

log = get_logger(__name__)


@dataclass(frozen=True)
class DrainLimits:
    max_seconds: float = 1800.0  # then the run ends and its queued successor takes over
    idle_seconds: float = 300.0  # ...or sooner, after this long with nothing landed
    report_seconds: float = 60.0  # how often progress is reported (and models refreshed)
    poll_seconds: float = 2.0  # look again at least this often, notification or not


def drain(
    connect: Callable[..., psycopg.Connection],
    limits: DrainLimits,
    on_report: Callable[[IngestSummary], None],
    after_batch: Callable[[psycopg.Connection, IngestSummary], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
) -> IngestSummary:
    """Apply deliveries until the limits say stop, or `stop` is set (the process is
    stopping: what was applied is reported, and the run ends cleanly); returns the run's
    totals. `connect` opens a connection to the application database (keyword arguments
    go to psycopg)."""
    total, unreported = IngestSummary(), IngestSummary()
    with connect(autocommit=True) as listener, connect() as conn:
        listen(listener, LANDED_CHANNEL)
        started = last_landed = last_report = clock()
        while True:
            with conn.transaction():
                batch = process_pending(conn)
            if after_batch is not None and batch.delivered:
                _react(conn, after_batch, batch)
            total.add(batch)
            unreported.add(batch)
            now = clock()
            if batch.claimed:
                last_landed = now
            if unreported.claimed and (now - last_report >= limits.report_seconds):
                _report(conn, unreported, on_report)
                unreported, last_report = IngestSummary(), now
            stop_at = min(started + limits.max_seconds, last_landed + limits.idle_seconds)
            if now >= stop_at or (stop is not None and stop.is_set()):
                break
            if batch.claimed < BATCH_SIZE:  # caught up: sleep until something lands
                await_notification(listener, min(limits.poll_seconds, stop_at - now), stop)
        if unreported.claimed:
            _report(conn, unreported, on_report)
    log.info(
        "ingest_drained",
        deliveries=total.claimed,
        processed=total.processed,
        failed=total.failed,
        unknown=total.unknown,
        seconds=round(clock() - started, 1),
    )
    return total


def _react(
    conn: psycopg.Connection,
    after_batch: Callable[[psycopg.Connection, IngestSummary], None],
    batch: IngestSummary,
) -> None:
    try:
        with conn.transaction():
            after_batch(conn, batch)
    except psycopg.OperationalError:
        raise  # the database is gone: the run ends, the deliveries are safe
    except Exception:  # noqa: BLE001 - reacting is best effort; the deliveries stand
        log.exception("after_batch_failed", deliveries=len(batch.delivered))


def _report(
    conn: psycopg.Connection,
    summary: IngestSummary,
    on_report: Callable[[IngestSummary], None],
) -> None:
    """`sync_ok` per studio in `app.events`, then the caller's report."""
    with conn.transaction():
        for location, count in summary.by_location.items():
            emit_event(
                conn,
                "sync_ok",
                actor="system:ingest",
                analytics=configured_analytics(),
                location_id=location,
                properties={"source": "webhook", "events": count, "failed": summary.failed},
            )
    on_report(summary)


def deliveries_flowing(conn: psycopg.Connection, *, within_seconds: float) -> bool:
    """Whether an ingest run is wanted: a delivery is pending, or one landed recently (so
    more are likely, and a run should be ready to take over from the one draining)."""
    row = conn.execute(
        """SELECT EXISTS (SELECT FROM raw.webhook_events WHERE status = 'pending')
                  OR EXISTS (SELECT FROM raw.webhook_events
                             WHERE id = (SELECT max(id) FROM raw.webhook_events)
                               AND received_at > now() - make_interval(secs => %s))""",
        (within_seconds,),
    ).fetchone()
    return bool(row and row[0])
