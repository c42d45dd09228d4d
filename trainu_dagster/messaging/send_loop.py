"""Keep a send run up while approvals may come, so an approved message goes in seconds.

Starting a run costs seconds (a new process loads the code location), far more than the
send itself; so one run serves a stream of approvals. It drains the outbox
(`outbox.drain`), then waits on `LISTEN trainu_outbox` (migration 0019 notifies every
approval and every resumed studio) or at most `poll_seconds` (a held message falling due
notifies nobody), and drains again. It stays up while a sender is wanted (messages due,
or drafts waiting for a trainer's decision: an approval may come any moment) and stops
`idle_seconds` after it no longer is, after `max_seconds` (the successor the outbox sensor
keeps queued takes over), or once it has sent the run cap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from trainu_dagster.db.notifications import await_notification, listen
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.messaging import outbox

CHANNEL = "trainu_outbox"


@dataclass(frozen=True)
class ServeLimits:
    max_seconds: float = 1800.0  # then the run ends and its queued successor takes over
    idle_seconds: float = 60.0  # ...or sooner, this long after a sender stopped being wanted
    poll_seconds: float = 5.0  # look again at least this often, notification or not


def serve(
    connect: Callable[[], psycopg.Connection],
    ghl: GhlClient,
    *,
    run_id: str,
    cap: int,
    approval_expiry: timedelta,
    lease: timedelta,
    limits: ServeLimits,
    on_pass: Callable[[outbox.Report], None],
    clock: Callable[[], float] = time.monotonic,
    stop: threading.Event | None = None,
) -> outbox.Report:
    """Drain the outbox pass after pass until the limits say stop, or `stop` is set (the
    process is stopping); `on_pass` hears of each pass that did something. `connect`
    opens an autocommit connection to the application database (the studios' workers
    take theirs from it too). Returns the run's totals."""
    total = outbox.Report()
    with connect() as listener, connect() as conn:
        listen(listener, CHANNEL)
        started = last_wanted = clock()
        while True:
            done = outbox.drain(conn, ghl, run_id=run_id, cap=cap - total.sent,
                                approval_expiry=approval_expiry, lease=lease,
                                connect=connect)  # fmt: skip
            total.add(done)
            if done.acted:
                on_pass(done)
            now = clock()
            if sender_wanted(conn, now=datetime.now(UTC), lease=lease):
                last_wanted = now
            stop_at = min(started + limits.max_seconds, last_wanted + limits.idle_seconds)
            if total.sent >= cap or now >= stop_at or (stop is not None and stop.is_set()):
                return total
            await_notification(listener, min(limits.poll_seconds, stop_at - now), stop)


def sender_wanted(conn: psycopg.Connection, *, now: datetime, lease: timedelta) -> bool:
    """Whether a send run should be up: work for it now (`outbox.work_waiting`), or drafts
    waiting for a decision in a studio that is sending."""
    if outbox.work_waiting(conn, now=now, lease=lease):
        return True
    row = conn.execute(
        """SELECT EXISTS (SELECT FROM app.messages m
                          JOIN app.locations l ON l.location_id = m.location_id
                          WHERE m.status IN ('pending_approval', 'needs_manual')
                            AND m.direction = 'outbound'
                            AND l.sending_paused_at IS NULL)"""
    ).fetchone()
    return bool(row and row[0])
