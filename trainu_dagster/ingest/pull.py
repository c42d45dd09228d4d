"""Incremental pulls from the GHL REST API into the raw tables.

GHL treats any non-429 webhook answer as final, so some webhooks are lost; pulls
reconcile. Each (location, stream) keeps a durable cursor in `raw.pull_state`. A page is
applied and its cursor saved in one transaction, so an interrupted pull resumes at the
next page: nothing is skipped and nothing is read twice. Pulled records go through the
webhook parser and the same last-write-wins upsert, so a pull and a webhook for the same
entity converge on the newest state whichever lands first.

How each stream moves forward, given what GHL's API offers:
- contacts: the contact search sorted by update time, from the last update seen (minus an
  overlap); a full run (backfill, daily reconcile) sweeps every contact, however old.
- opportunities: keyset paging in creation order. An incremental run continues after the
  last record seen (new records); a full run sweeps everything, which is how changes to
  old records that no webhook reported come in.
- appointments: no paging and no "changed since": windows of start time, sliced, per
  calendar. Every run re-reads `lookback` of the past (sessions are marked showed or
  no-show after they happen) up to `horizon` ahead.
- messages: the export sorted by update time, from the last update seen (minus an overlap).

A GHL answer that cannot be read or paged on (`GhlAnswerError`: an empty or broken body, a
cursor that does not move on, a page larger than asked) ends that stream's pull, not the
run: the reason is logged and kept in `raw.pull_state.last_error` (shown in sync health and
`trainu pull status`), the pages already applied stay, the cursor stays after the last of
them, and the next scheduled pull tries again from there.

What a page of messages means for the clients' threads is messaging's business, a layer
above: the caller hands it in as `on_messages` (the jobs and the CLI pass
`messaging.inbound.record_pulled`), as the ingest run takes its drafting as `after_batch`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Generator, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from trainu_dagster.ghl.api_records import Stream, parse_record
from trainu_dagster.ghl.client import GhlClient, epoch_ms
from trainu_dagster.ghl.errors import GhlAnswerError, GhlPagingError
from trainu_dagster.ghl.payloads import (
    EntityChange,
    OptOut,
    UnparseableEvent,
    parse_timestamp,
)
from trainu_dagster.ingest.apply import apply_changes, record_opt_outs
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.logging import get_logger
from trainu_dagster.observability.product_events import emit_event

log = get_logger(__name__)

STREAMS: tuple[Stream, ...] = get_args(Stream)
Cursor = dict[str, Any]
# (records of one page, the cursor that resumes right after it)
PageOfRecords = tuple[list[dict[str, Any]], Cursor]
Pages = Generator[PageOfRecords, None, None]  # a generator: a pull that stops closes it


@dataclass(frozen=True)
class PullOptions:
    since: datetime | None = None  # backfill start; None means continue incrementally
    full: bool = False  # sweep contacts and opportunities from the start
    lookback: timedelta = timedelta(days=14)
    horizon: timedelta = timedelta(days=60)
    window: timedelta = timedelta(days=7)  # one calendar-events request covers this much
    overlap: timedelta = timedelta(minutes=5)  # messages updated in the same instant


@dataclass
class PullResult:
    location_id: str
    stream: Stream
    pages: int = 0
    records: int = 0
    applied: int = 0
    stale: int = 0
    opt_outs: int = 0
    rejected: int = 0
    resumed: bool = False
    skipped: bool = False  # another pull of this stream of this studio was running
    ended: str | None = None  # why GHL's answer ended the pull early (None: it ran to the end)
    progress: float | None = None  # share of the range covered, where the stream knows it


OnPage = Callable[[PullResult], None]  # called after each committed page
# Called with (connection, studio, GHL message ids) for each page of the messages stream,
# inside the page's transaction, so a page and what it put on the clients' threads commit
# together (or not at all); what it returns is ignored. `messaging.inbound.record_pulled`.
OnMessages = Callable[[psycopg.Connection, str, list[str]], object]


def pull_stream(
    conn: psycopg.Connection,
    client: GhlClient,
    location_id: str,
    stream: Stream,
    *,
    options: PullOptions | None = None,
    now: datetime | None = None,
    on_page: OnPage | None = None,
    on_messages: OnMessages | None = None,
) -> PullResult:
    """Pull one stream of one location to its end; `conn` must be in autocommit mode.
    `on_messages` hears of each page of messages (without it, they land in raw only).

    One pull per (studio, stream) at a time, across processes (the schedule, a backfill, the
    CLI): a second one finds the lock taken and returns at once, marked `skipped`."""
    with _only_pull(conn, location_id, stream) as mine:
        if not mine:
            log.info("pull_skipped_busy", location_id=location_id, stream=stream)
            return PullResult(location_id, stream, skipped=True)
        return _pull(conn, client, location_id, stream, options or PullOptions(), now,
                     on_page, on_messages)  # fmt: skip


@contextmanager
def _only_pull(conn: psycopg.Connection, location_id: str, stream: Stream) -> Iterator[bool]:
    """A session advisory lock on (studio, stream); yields whether this session holds it."""
    key = f"pull:{location_id}:{stream}"
    row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
    held = bool(row and row[0])
    try:
        yield held
    finally:
        if held:
            conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))


def _pull(
    conn: psycopg.Connection,
    client: GhlClient,
    location_id: str,
    stream: Stream,
    options: PullOptions,
    now: datetime | None,
    on_page: OnPage | None,
    on_messages: OnMessages | None,
) -> PullResult:
    now = now or datetime.now(UTC)
    state = _load_state(conn, location_id, stream)
    resumed = state["last_status"] in ("running", "failed") and bool(state["cursor"])
    start = state["cursor"] if resumed else _fresh_cursor(stream, state, options, now)
    result = PullResult(location_id, stream, resumed=resumed)
    _mark(conn, location_id, stream, "running", cursor=start, started=not resumed)
    cursor = start
    try:
        with closing(_fetched_ahead(PAGERS[stream](client, location_id, start))) as pages:
            for records, cursor in pages:
                _apply_page(conn, result, records, cursor, on_messages)
                if on_page is not None:
                    on_page(result)
    except GhlAnswerError as exc:  # the cursor stays after the last page applied
        result.ended = f"{type(exc).__name__}: {exc}"
        _mark(conn, location_id, stream, "failed", error=result.ended)
        log.warning("pull_ended", location_id=location_id, stream=stream, reason=result.ended)
        return result
    except BaseException as exc:
        _mark(conn, location_id, stream, "failed", error=f"{type(exc).__name__}: {exc}")
        raise
    _mark(conn, location_id, stream, "succeeded", cursor=_completed_cursor(stream, cursor))
    emit_event(
        conn,
        "sync_ok",
        actor="system:pull",
        analytics=configured_analytics(),
        location_id=location_id,
        properties={"source": "pull", "stream": stream, "records": result.records},
    )
    log.info("pull_finished", location_id=location_id, stream=stream, records=result.records)
    return result


def _fetched_ahead(pages: Pages) -> Pages:
    """The next page is fetched in a worker thread while this one is applied, so GHL's
    request budget, not the database, sets the pace. A page fetched but not applied when a
    pull stops is simply fetched again on resume, since the cursor only moves on apply."""
    with ThreadPoolExecutor(1, thread_name_prefix="ghl-fetch") as worker:
        ahead = worker.submit(next, pages, None)
        try:
            while (page := ahead.result()) is not None:
                ahead = worker.submit(next, pages, None)
                yield page
        finally:
            ahead.cancel()
            wait([ahead])  # the pager must be idle before it is closed
            pages.close()


def _apply_page(
    conn: psycopg.Connection,
    result: PullResult,
    records: list[dict[str, Any]],
    cursor: Cursor,
    on_messages: OnMessages | None,
) -> None:
    changes, opt_outs, rejected = _parse(result.stream, result.location_id, records)
    with conn.transaction():
        applied = apply_changes(conn, changes, source="pull")
        result.opt_outs += record_opt_outs(conn, opt_outs)
        if result.stream == "messages" and on_messages is not None:  # the threads, as webhooks do
            on_messages(conn, result.location_id,
                        [c.entity_id for c in changes if c.entity == "message"])  # fmt: skip
        for record, error in rejected:
            _reject(conn, result, record, error)
        watermark = max((c.source_updated_at for c in changes if c.source_updated_at), default=None)
        conn.execute(
            """UPDATE raw.pull_state
               SET cursor = %s, records_pulled = records_pulled + %s,
                   watermark = GREATEST(watermark, %s)
               WHERE location_id = %s AND stream = %s""",
            (Jsonb(cursor), len(records), watermark, result.location_id, result.stream),
        )
    result.pages += 1
    result.records += len(records)
    result.applied += applied.applied
    result.stale += applied.stale
    result.rejected += len(rejected)
    result.progress = progress(result.stream, cursor)


def progress(stream: Stream, cursor: Cursor) -> float | None:
    """How much of its range a stream has covered, where the cursor tells: the appointment
    windows walk a known span of time; the listings only know where they are."""
    if stream != "appointments" or not cursor.get("start"):
        return None
    start, at, end = (datetime.fromisoformat(cursor[k]) for k in ("start", "next", "end"))
    return 1.0 if end <= start else min(1.0, (at - start) / (end - start))


def _parse(
    stream: Stream, location_id: str, records: list[dict[str, Any]]
) -> tuple[list[EntityChange], list[OptOut], list[tuple[dict[str, Any], Exception]]]:
    """Parse record by record, so one malformed record does not hold back its page."""
    changes: list[EntityChange] = []
    opt_outs: list[OptOut] = []
    rejected: list[tuple[dict[str, Any], Exception]] = []
    for record in records:
        try:
            parsed = parse_record(stream, location_id, record)
        except (UnparseableEvent, ValueError, TypeError, KeyError) as exc:
            rejected.append((record, exc))
            continue
        changes.extend(parsed.changes)
        opt_outs.extend(parsed.opt_outs)
    return changes, opt_outs, rejected


def _reject(
    conn: psycopg.Connection, result: PullResult, record: dict[str, Any], error: Exception
) -> None:
    """Kept as a dead-letter item for a human; the next pull reads the record again."""
    log.warning("pull_record_rejected", stream=result.stream, error=str(error))
    conn.execute(
        """INSERT INTO ops.sync_queue (location_id, source, payload_ref, error_class, error,
                                       attempts, status, next_attempt_at)
           VALUES (%s, 'pull', %s, %s, %s, 1, 'dead', now())""",
        (
            result.location_id,
            Jsonb({"stream": result.stream, "record": record}),
            type(error).__name__,
            str(error),
        ),
    )


# --- state ---------------------------------------------------------------------------------


def _load_state(conn: psycopg.Connection, location_id: str, stream: Stream) -> dict[str, Any]:
    conn.execute(
        """INSERT INTO raw.pull_state (location_id, stream) VALUES (%s, %s)
           ON CONFLICT DO NOTHING""",
        (location_id, stream),
    )
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            "SELECT * FROM raw.pull_state WHERE location_id = %s AND stream = %s",
            (location_id, stream),
        ).fetchone()
    assert row is not None
    return row


def _mark(
    conn: psycopg.Connection,
    location_id: str,
    stream: Stream,
    status: str,
    *,
    cursor: Cursor | None = None,
    started: bool = False,
    error: str | None = None,
) -> None:
    conn.execute(
        """UPDATE raw.pull_state
           SET last_status = %(status)s,
               cursor = COALESCE(%(cursor)s, cursor),
               last_started_at = CASE WHEN %(started)s THEN now() ELSE last_started_at END,
               last_finished_at = CASE WHEN %(status)s = 'running'
                                       THEN last_finished_at ELSE now() END,
               last_error = %(error)s
           WHERE location_id = %(location_id)s AND stream = %(stream)s""",
        {
            "status": status,
            "cursor": Jsonb(cursor) if cursor is not None else None,
            "started": started,
            "error": error,
            "location_id": location_id,
            "stream": stream,
        },
    )


def _fresh_cursor(
    stream: Stream, state: Mapping[str, Any], options: PullOptions, now: datetime
) -> Cursor:
    previous: Cursor = state["cursor"] or {}
    full = options.full or options.since is not None
    if stream == "opportunities":
        return {"after": None if full else previous.get("after")}
    watermark: datetime | None = state["watermark"]
    since = watermark - options.overlap if watermark else None
    if stream == "contacts":  # a studio's clients may have joined long before its history
        return {"since": None if full else _iso(since), "after": None}
    if stream == "appointments":
        start = options.since or now - options.lookback
        return {
            "start": start.isoformat(),
            "next": start.isoformat(),
            "end": (now + options.horizon).isoformat(),
            "window_seconds": options.window.total_seconds(),
        }
    return {"since": _iso(options.since or since), "channel": 0, "page": None}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _completed_cursor(stream: Stream, cursor: Cursor) -> Cursor:
    """What the next incremental run starts from."""
    if stream == "opportunities":
        return {"after": cursor.get("after")}
    return {}


# --- paging per stream ---------------------------------------------------------------------


class _Walk:
    """The cursors one walk of a listing has followed: a listing that hands back one of
    them again (the client's own check sees only the cursor it just sent) would loop forever."""

    def __init__(self, listing: str) -> None:
        self.listing = listing
        self._seen: set[str] = set()

    def visit(self, cursor: object) -> None:
        if cursor is None:
            return
        key = json.dumps(cursor, sort_keys=True, default=str)
        if key in self._seen:
            raise GhlPagingError(
                f"{self.listing} listing", 200,
                f"a cursor already followed came back on page {len(self._seen) + 1}",
            )  # fmt: skip
        self._seen.add(key)


def _contact_pages(client: GhlClient, location_id: str, cursor: Cursor) -> Pages:
    """The contact search, least recently updated first, resumed after the last key seen."""
    since = datetime.fromisoformat(cursor["since"]) if cursor.get("since") else None
    after = cursor.get("after")
    seen = _Walk("contacts")
    while True:
        page = client.search_contacts(location_id, updated_since=since, search_after=after)
        if page.records:
            after = page.records[-1].get("searchAfter", after)
        if page.next_cursor is not None:
            seen.visit(after)
        yield page.records, {"since": cursor.get("since"), "after": after}
        if page.next_cursor is None:
            return


def _opportunity_pages(client: GhlClient, location_id: str, cursor: Cursor) -> Pages:
    """Keyset paging in creation order, resumed after the last (createdAt, id) seen."""
    after = cursor.get("after")
    seen = _Walk("opportunities")
    while True:
        page = client.opportunities(location_id, after)
        if page.records:
            last = page.records[-1]
            added = parse_timestamp(last.get("createdAt"))
            after = {"startAfter": epoch_ms(added) if added else None, "startAfterId": last["id"]}
        if page.next_cursor is not None:
            seen.visit(after)
        yield page.records, {"after": after}
        if page.next_cursor is None:
            return


def _appointment_pages(client: GhlClient, location_id: str, cursor: Cursor) -> Pages:
    """One page per window of start time, covering every calendar."""
    start, end = datetime.fromisoformat(cursor["next"]), datetime.fromisoformat(cursor["end"])
    window = timedelta(seconds=cursor["window_seconds"])
    calendars = [c["id"] for c in client.calendars(location_id)]
    while start < end:
        stop = min(start + window, end)
        records = [
            event
            for calendar_id in calendars
            for event in client.calendar_events(location_id, calendar_id, start, stop)
        ]
        yield records, {**cursor, "next": stop.isoformat()}
        start = stop


def _message_pages(client: GhlClient, location_id: str, cursor: Cursor) -> Pages:
    """The export's default listing (everything but email), then the email listing."""
    since = datetime.fromisoformat(cursor["since"]) if cursor.get("since") else None
    for index in range(cursor.get("channel", 0), len(MESSAGE_LISTINGS)):
        page_cursor = cursor.get("page") if index == cursor.get("channel", 0) else None
        seen = _Walk(f"messages ({MESSAGE_LISTINGS[index] or 'all but email'})")
        while True:
            page = client.messages(
                location_id,
                updated_since=since,
                cursor=page_cursor,
                channel=MESSAGE_LISTINGS[index],
            )
            page_cursor = page.next_cursor["cursor"] if page.next_cursor else None
            seen.visit(page_cursor)
            done = page_cursor is None
            yield (
                page.records,
                {
                    "since": cursor.get("since"),
                    "channel": index + 1 if done else index,
                    "page": page_cursor,
                },
            )
            if done:
                break


MESSAGE_LISTINGS = (None, "Email")
PAGERS: dict[Stream, Callable[[GhlClient, str, Cursor], Pages]] = {
    "contacts": _contact_pages,
    "opportunities": _opportunity_pages,
    "appointments": _appointment_pages,
    "messages": _message_pages,
}


def registered_locations(conn: psycopg.Connection) -> list[str]:
    """The studios TrainU serves (`trainu locations add`)."""
    return [row[0] for row in conn.execute("SELECT location_id FROM app.locations ORDER BY 1")]


def backfilled_locations(conn: psycopg.Connection) -> list[str]:
    """The studios whose history has landed: what the scheduled pulls keep up to date (a new
    studio's first pull is its backfill, see `ingest.backfill`)."""
    rows = conn.execute(
        """SELECT l.location_id FROM app.locations l
           JOIN raw.backfills b USING (location_id) WHERE b.status = 'succeeded' ORDER BY 1"""
    )
    return [row[0] for row in rows]
