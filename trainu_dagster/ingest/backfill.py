"""A studio's history, pulled once when TrainU first sees it; then pulls go incremental.

A studio counts as seen when it is in `app.locations` (`trainu locations add`, the stack's
simulated studio, a studio added in settings): `request_new` gives it a row in
`raw.backfills` with the start of its history (`history_months` back, fixed then, so a
resumed backfill pulls the same range). `run_backfill` reads the studio's timezone and
trainers from GHL, then pulls every stream from there, contacts first. Each stream
resumes from its cursor in `raw.pull_state` after an interruption, and a finished stream
is not pulled again by a retry. The scheduled pulls leave a studio alone until its
backfill has succeeded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import psycopg
from dateutil.relativedelta import relativedelta
from psycopg.rows import class_row

from trainu_dagster.ghl.api_records import Stream
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ghl.errors import GhlError
from trainu_dagster.ingest.pull import (
    OnMessages,
    OnPage,
    PullOptions,
    PullResult,
    progress,
    pull_stream,
)
from trainu_dagster.ingest.studio_profile import sync_studio
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.logging import get_logger
from trainu_dagster.observability.product_events import emit_event

log = get_logger(__name__)
# Contacts first: bookings and messages read best with their contact already landed.
ORDER: tuple[Stream, ...] = ("contacts", "appointments", "messages", "opportunities")
# Windows of start time per calendar request: a year of history is a few dozen requests.
WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class Backfill:
    location_id: str
    since: datetime
    status: str
    streams_done: list[str]
    attempts: int
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    last_error: str | None


def request_new(conn: psycopg.Connection, *, history_months: int, now: datetime) -> list[str]:
    """Give every studio without a backfill one, from `history_months` before `now`."""
    since = now - relativedelta(months=history_months)
    rows = conn.execute(
        """INSERT INTO raw.backfills (location_id, since, requested_at)
           SELECT location_id, %s, %s FROM app.locations
           ON CONFLICT (location_id) DO NOTHING RETURNING location_id""",
        (since, now),
    ).fetchall()
    return [row[0] for row in rows]


def due(
    conn: psycopg.Connection, *, now: datetime, retry_after: timedelta = timedelta(minutes=5)
) -> list[Backfill]:
    """Backfills that should run: new ones, and failed ones after `retry_after`. (A running
    one whose run died is the caller's to tell, from the orchestrator's view of runs.)"""
    with conn.cursor(row_factory=class_row(Backfill)) as cur:
        return cur.execute(
            """SELECT * FROM raw.backfills
               WHERE status IN ('pending', 'running')
                  OR (status = 'failed' AND finished_at < %s)
               ORDER BY requested_at, location_id""",
            (now - retry_after,),
        ).fetchall()


def load(conn: psycopg.Connection, location_id: str) -> Backfill:
    with conn.cursor(row_factory=class_row(Backfill)) as cur:
        backfill = cur.execute(
            "SELECT * FROM raw.backfills WHERE location_id = %s", (location_id,)
        ).fetchone()
    if backfill is None:
        raise LookupError(f"studio {location_id} has no backfill (is it in app.locations?)")
    return backfill


def run_backfill(
    conn: psycopg.Connection,
    client: GhlClient,
    location_id: str,
    *,
    on_page: OnPage | None = None,
    on_stream: Callable[[PullResult], None] | None = None,
    on_messages: OnMessages | None = None,
    now: datetime | None = None,
) -> list[PullResult]:
    """Pull the studio's history, stream by stream; `conn` must be in autocommit mode.
    Raises on failure, after recording it (the next attempt resumes). `on_messages` is
    `pull_stream`'s: what to do with each page of the studio's messages."""
    backfill = load(conn, location_id)
    conn.execute(
        """UPDATE raw.backfills SET status = 'running', attempts = attempts + 1,
               started_at = now(), last_error = NULL WHERE location_id = %s""",
        (location_id,),
    )
    options = PullOptions(since=backfill.since, full=True, window=WINDOW)
    results = []
    try:
        _sync_profile(conn, client, location_id)
        for stream in ORDER:
            if stream in backfill.streams_done:
                continue
            result = pull_stream(conn, client, location_id, stream, options=options, now=now,
                                 on_page=on_page, on_messages=on_messages)  # fmt: skip
            if result.skipped:
                raise BackfillBusy(f"{location_id} {stream} is being pulled by another process")
            if result.ended is not None:  # not done: the next attempt resumes from its cursor
                raise BackfillStalled(f"{location_id} {stream}: {result.ended}")
            conn.execute(
                """UPDATE raw.backfills SET streams_done = array_append(streams_done, %s)
                   WHERE location_id = %s""",
                (stream, location_id),
            )
            results.append(result)
            if on_stream is not None:
                on_stream(result)
    except BaseException as exc:
        conn.execute(
            """UPDATE raw.backfills SET status = 'failed', finished_at = now(), last_error = %s
               WHERE location_id = %s""",
            (f"{type(exc).__name__}: {exc}", location_id),
        )
        raise
    conn.execute(
        "UPDATE raw.backfills SET status = 'succeeded', finished_at = now() WHERE location_id = %s",
        (location_id,),
    )
    records = sum(r.records for r in results)
    emit_event(
        conn,
        "backfill_finished",
        actor="system:pull",
        analytics=configured_analytics(),
        location_id=location_id,
        properties={"since": backfill.since.isoformat(), "records": records},
    )
    log.info("backfill_finished", location_id=location_id, records=records)
    return results


def _sync_profile(conn: psycopg.Connection, client: GhlClient, location_id: str) -> None:
    """The studio's timezone and trainers first; a token without those scopes still gets
    the history (the studio keeps the timezone it was registered with)."""
    try:
        with conn.transaction():
            profile = sync_studio(conn, client, location_id)
    except GhlError as exc:
        log.warning("studio_profile_unavailable", location_id=location_id, error=str(exc))
        return
    log.info("studio_profile", location_id=location_id, timezone=profile.timezone,
             trainers=profile.trainers)  # fmt: skip


class BackfillBusy(RuntimeError):
    """A stream of the studio is being pulled elsewhere; the backfill tries again later."""


class BackfillStalled(RuntimeError):
    """GHL's answer ended a stream's pull early (`PullResult.ended`); the backfill tries
    again later from that stream's cursor."""


@dataclass(frozen=True)
class StreamStatus:
    location_id: str
    stream: str
    last_status: str | None
    records_pulled: int
    progress: float | None  # of the stream's current pass, where known
    last_finished_at: datetime | None
    last_error: str | None


def statuses(conn: psycopg.Connection) -> tuple[list[Backfill], list[StreamStatus]]:
    """Every studio's backfill and every stream's pull state, for `trainu pull status`."""
    with conn.cursor(row_factory=class_row(Backfill)) as cur:
        backfills = cur.execute("SELECT * FROM raw.backfills ORDER BY location_id").fetchall()
    rows = conn.execute(
        """SELECT location_id, stream, last_status, records_pulled, cursor, last_finished_at,
                  last_error
           FROM raw.pull_state ORDER BY location_id, stream"""
    ).fetchall()
    streams = [
        StreamStatus(
            location_id,
            stream,
            status,
            pulled,
            (1.0 if status == "succeeded" else progress(stream, cursor)),
            finished,
            error,
        )
        for location_id, stream, status, pulled, cursor, finished, error in rows
    ]
    return backfills, streams
