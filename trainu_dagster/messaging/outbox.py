"""The outbox: every approved message sent through GHL exactly once, within the rules.

A send run (`drain`) gives each studio with messages due a worker of its own (its own
connection; a studio waiting on GHL's rate limit holds up no other), which repeats three
steps until nothing is due there:

1. **claim**, one transaction: approved messages that are due, locked `FOR UPDATE SKIP
   LOCKED` so concurrent runs never share one; every rule re-checked (`policy.decide`) on
   facts read under the lock. Those to send become `queued`, the durable claim (who, when);
   the others are held, suppressed or sent back to the inbox, each with its reason.
2. **send**, per claim: a last look at the kill switch and the opt-outs, then
   `POST /conversations/messages` with exactly the approved text.
3. **record**, its own transaction: `sent` with GHL's ids; a permanent refusal (invalid
   number, deleted contact, DND) → `failed`; "too many requests" → approved again after a
   backoff (GHL sent nothing); an ambiguous answer (timeout, 5xx) → looked up in GHL
   before anything else, never re-sent blind.

A run that dies between 2 and 3 leaves `queued` claims; once their lease is over,
`recover` looks each up in the client's GHL conversation (outbound, after the claim, the
same text): found → `sent`, not found → approved again. So a crash at any point neither
sends twice nor loses an approved message. Every transition is an `app.events` row with
the message's correlation id.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import psycopg
from psycopg.rows import dict_row

from trainu_dagster.ghl.client import GhlClient, GhlError, RetryableGhlError
from trainu_dagster.ghl.payloads import parse_timestamp
from trainu_dagster.messaging import policy
from trainu_dagster.messaging.inbound import apply_landed_status
from trainu_dagster.messaging.policy import MOOT_WHEN_REBOOKED, SendFacts, SendRules
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.logging import get_logger
from trainu_dagster.observability.product_events import emit_event, record_event

log = get_logger(__name__)
ACTOR = "system:outbox"
BATCH = 50
BURST_WINDOW = timedelta(minutes=10)
MAX_ATTEMPTS = 8
PARALLEL_STUDIOS = 8  # studios one send run sends to at once, each on its own connection
CLOCK_SKEW = timedelta(minutes=2)  # GHL's clock against ours, when matching a lost send
Clock = Callable[[], datetime]
# Test seam for crash injection: called with each step's name ("claimed", "sending",
# "sent_unrecorded", "recorded"); the default does nothing.
checkpoint: Callable[[str, UUID], None] = lambda step, message_id: None  # noqa: E731


@dataclass(frozen=True)
class Claim:
    id: UUID
    location_id: str
    client_id: UUID
    contact_id: str
    channel: str
    subject: str | None
    text: str
    correlation_id: UUID
    purpose: str | None
    claimed_at: datetime
    send_attempts: int


COUNTS = ("sent", "held", "suppressed", "stale", "failed", "retrying", "released", "reconciled")


@dataclass
class Report:
    sent: int = 0
    held: int = 0
    suppressed: int = 0
    stale: int = 0
    failed: int = 0
    retrying: int = 0
    released: int = 0
    reconciled: int = 0
    paused: list[str] = field(default_factory=list)  # studios the burst brake stopped

    @property
    def acted(self) -> bool:
        """Whether anything was sent, held, suppressed, sent back or paused."""
        return any(getattr(self, name) for name in COUNTS) or bool(self.paused)

    def add(self, other: Report) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.paused.extend(other.paused)


def drain(
    conn: psycopg.Connection,
    ghl: GhlClient,
    *,
    run_id: str,
    cap: int,
    approval_expiry: timedelta,
    lease: timedelta,
    clock: Clock = lambda: datetime.now(UTC),
    only: UUID | None = None,
    connect: Callable[[], psycopg.Connection] | None = None,
    parallel: int = PARALLEL_STUDIOS,
) -> Report:
    """Send what is due until nothing is, or `cap` messages have gone (`only`: just that
    message). `conn` must be in autocommit mode: each step commits on its own, so a crash
    loses at most one step.

    Each studio with messages due gets a worker of its own (up to `parallel` at once, each
    on its own autocommit connection from `connect`, by default one like `conn`): a studio
    waiting on GHL's rate limit never holds up another. Within a studio the worker claims
    and sends one after another, as a single run did. A worker that fails makes the others
    stop after the message in hand (what they claimed and did not send goes back to
    approved) and the run re-raises its error."""
    report = recover(conn, ghl, now=clock(), lease=lease)
    run = _Run(ghl, run_id=run_id, approval_expiry=approval_expiry, clock=clock, only=only,
               connect=connect or _connector(conn),
               allowance=_Allowance(cap - report.sent))  # fmt: skip
    started: set[str] = set()
    pending: set[Future[Report]] = set()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="outbox") as pool:
        try:
            while True:
                for location_id in _due_locations(conn, now=clock(), only=only):
                    if location_id not in started:  # a studio once per run; the next run
                        started.add(location_id)  # takes what was approved after it finished
                        pending.add(pool.submit(run.studio, location_id))
                if not pending:
                    break
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    report.add(future.result())  # a worker's error is the run's
        except BaseException:
            run.stop.set()
            wait(pending)
            raise
    return report


class _Allowance:
    """The run's cap, shared by its workers: each claims only what may still be sent, and
    gives back what it claimed room for but did not send."""

    def __init__(self, cap: int) -> None:
        self._left = max(cap, 0)
        self._reserved = 0
        self._changed = threading.Condition()

    def take(self, most: int, stop: threading.Event) -> int:
        with self._changed:
            while self._left == 0 and self._reserved > 0 and not stop.is_set():
                self._changed.wait(0.5)  # another worker may give some back
            taken = min(most, self._left)
            self._left -= taken
            self._reserved += taken
            return taken

    def settle(self, taken: int, sent: int) -> None:
        with self._changed:
            self._left += taken - sent
            self._reserved -= taken
            self._changed.notify_all()


@dataclass
class _Run:
    ghl: GhlClient
    run_id: str
    approval_expiry: timedelta
    clock: Clock
    only: UUID | None
    connect: Callable[[], psycopg.Connection]
    allowance: _Allowance
    stop: threading.Event = field(default_factory=threading.Event)

    def studio(self, location_id: str) -> Report:
        """One studio's worker: claim and send its due messages until none is left."""
        report = Report()
        with self.connect() as conn:
            conn.autocommit = True
            while not self.stop.is_set():
                taken = self.allowance.take(BATCH, self.stop)
                sent_before = report.sent
                try:
                    if not taken or self.stop.is_set():
                        break
                    with conn.transaction():
                        claims, step = claim(conn, run_id=self.run_id, now=self.clock(),
                                             limit=taken, approval_expiry=self.approval_expiry,
                                             only=self.only, location_id=location_id)  # fmt: skip
                    report.add(step)
                    if not claims:
                        break
                    for index, one in enumerate(claims):
                        if self.stop.is_set():
                            report.released += self._give_back(conn, claims[index:])
                            break
                        report.add(send(conn, self.ghl, one, run_id=self.run_id, clock=self.clock))
                finally:
                    self.allowance.settle(taken, report.sent - sent_before)
        return report

    def _give_back(self, conn: psycopg.Connection, claims: list[Claim]) -> int:
        """Claims this run will not send (another worker failed): approved again at once.
        GHL was never asked for them, so nothing needs looking up."""
        for one in claims:
            with conn.transaction():
                _release(conn, one, None, "send run stopped", self.clock())
        return len(claims)


def _due_locations(conn: psycopg.Connection, *, now: datetime, only: UUID | None) -> list[str]:
    """Studios with messages due (what `claim` would lock), the longest waiting first."""
    return [row[0] for row in conn.execute(
        """SELECT m.location_id FROM app.messages m
           JOIN app.locations l ON l.location_id = m.location_id
           WHERE m.status = 'approved' AND m.direction = 'outbound'
             AND l.sending_paused_at IS NULL
             AND coalesce(greatest(m.held_until, m.scheduled_for), '-infinity') <= %(now)s
             AND (%(only)s::uuid IS NULL OR m.id = %(only)s)
           GROUP BY m.location_id
           ORDER BY min(coalesce(greatest(m.held_until, m.scheduled_for), m.approved_at))""",
        {"now": now, "only": only},
    )]  # fmt: skip


def _connector(conn: psycopg.Connection) -> Callable[[], psycopg.Connection]:
    """New autocommit connections with `conn`'s parameters (its password included)."""
    dsn, password = conn.info.dsn, conn.info.password
    extra = {"password": password} if password else {}
    return lambda: psycopg.connect(dsn, autocommit=True, **extra)


def work_waiting(conn: psycopg.Connection, *, now: datetime, lease: timedelta) -> int:
    """How many messages a send run would act on now: approved and due in a studio that
    is sending, or claims left by a run that died (past their lease)."""
    return conn.execute(
        """SELECT count(*) FROM app.messages m
           JOIN app.locations l ON l.location_id = m.location_id
           WHERE (m.status = 'approved' AND l.sending_paused_at IS NULL
                  AND coalesce(greatest(m.held_until, m.scheduled_for), '-infinity') <= %s)
              OR (m.status = 'queued' AND m.claimed_at < %s)""",
        (now, now - lease),
    ).fetchone()[0]


def status(conn: psycopg.Connection, *, now: datetime) -> list[dict[str, Any]]:
    """Per studio: paused or not (and why), what waits (due, held by reason), what is in
    flight, and what was sent and failed in the last 24 hours."""
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT l.location_id, l.sending_paused_at, l.sending_paused_reason,
                      count(*) FILTER (WHERE m.status = 'approved' AND coalesce(
                          greatest(m.held_until, m.scheduled_for), '-infinity') <= %(now)s) AS due,
                      count(*) FILTER (WHERE m.status = 'approved' AND m.held_until > %(now)s)
                          AS held,
                      count(*) FILTER (WHERE m.status = 'queued') AS in_flight,
                      count(*) FILTER (WHERE m.sent_at > %(day)s) AS sent_24h,
                      count(*) FILTER (WHERE m.status = 'failed' AND m.updated_at > %(day)s)
                          AS failed_24h
               FROM app.locations l
               LEFT JOIN app.messages m ON m.location_id = l.location_id
                    AND m.direction = 'outbound'
               GROUP BY l.location_id ORDER BY l.location_id""",
            {"now": now, "day": now - timedelta(hours=24)},
        ).fetchall()


def set_paused(conn: psycopg.Connection, location_id: str, paused: bool, reason: str) -> bool:
    """An operator's kill switch for a studio (the owner's is `studio_settings`); returns
    whether anything changed."""
    row = conn.execute(
        """UPDATE app.locations SET sending_paused_at = CASE WHEN %(paused)s THEN now() END,
               sending_paused_by = NULL,
               sending_paused_reason = CASE WHEN %(paused)s THEN %(reason)s END
           WHERE location_id = %(location)s AND (sending_paused_at IS NULL) = %(paused)s
           RETURNING location_id""",
        {"paused": paused, "reason": reason, "location": location_id},
    ).fetchone()
    if row is not None:
        record_event(conn, "sending_paused" if paused else "sending_resumed", actor="operator",
                     location_id=location_id, entity_type="location", entity_id=location_id,
                     properties={"reason": reason})  # fmt: skip
    return row is not None


# --- 1. claim --------------------------------------------------------------------------------

DUE = """
SELECT m.id, m.location_id, m.client_id, c.ghl_contact_id AS contact_id, m.channel, m.subject,
       m.approved_body AS text, m.correlation_id, m.purpose, m.trigger, m.approved_at,
       m.created_at, m.send_attempts, coalesce(c.timezone, l.timezone) AS timezone,
       l.quiet_hours_start, l.quiet_hours_end, l.max_messages_per_day, l.max_messages_per_week,
       l.burst_limit
FROM app.messages m
JOIN app.clients c ON c.id = m.client_id
JOIN app.locations l ON l.location_id = m.location_id
WHERE m.status = 'approved' AND m.direction = 'outbound' AND l.sending_paused_at IS NULL
  AND coalesce(greatest(m.held_until, m.scheduled_for), '-infinity') <= %(now)s
  AND (%(only)s::uuid IS NULL OR m.id = %(only)s)
  AND (%(location)s::text IS NULL OR m.location_id = %(location)s)
ORDER BY coalesce(greatest(m.held_until, m.scheduled_for), m.approved_at), m.id
LIMIT %(limit)s
FOR UPDATE OF m SKIP LOCKED
"""


def claim(
    conn: psycopg.Connection,
    *,
    run_id: str,
    now: datetime,
    limit: int,
    approval_expiry: timedelta,
    only: UUID | None = None,
    location_id: str | None = None,
) -> tuple[list[Claim], Report]:
    """Lock what is due (`location_id`: in that studio only), decide each, and claim those
    to send (the caller commits)."""
    report = Report()
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            DUE, {"now": now, "limit": limit, "only": only, "location": location_id}
        ).fetchall()
    if not rows:
        return [], report
    clients = list({row["client_id"] for row in rows})
    opted_out = _opt_outs(conn, clients)
    confirming = _may_confirm(
        conn, [r["id"] for r in rows if r["purpose"] == policy.OPT_OUT_CONFIRMATION]
    )
    recent = _recent_sends(conn, clients, now)
    burst = _sent_since(conn, {row["location_id"] for row in rows}, now - BURST_WINDOW)
    claims, confirmed = [], set()  # confirmed: clients whose one confirmation is claimed
    for row in rows:
        location = row["location_id"]
        if location in report.paused:
            continue
        facts = SendFacts(
            purpose=row["purpose"] or "",
            approved_at=row["approved_at"],
            zone=policy.zone_or_utc(row["timezone"]),
            opted_out=opted_out.get((row["client_id"], row["channel"])),
            confirms_opt_out=row["id"] in confirming and row["client_id"] not in confirmed,
            trigger_gone=trigger_gone(conn, row, now),
            recent=recent[row["client_id"]],
        )
        decision = policy.decide(facts, _rules(row, approval_expiry), now)
        if decision.action == "send" and burst[location] >= row["burst_limit"]:
            _brake(conn, location, burst[location], now)
            report.paused.append(location)
            continue
        if decision.action == "send":
            claims.append(_claim(conn, row, run_id, now))
            if row["purpose"] == policy.OPT_OUT_CONFIRMATION:
                confirmed.add(row["client_id"])
            recent[row["client_id"]].append((now, row["purpose"] in policy.SERVICE_PURPOSES))
            burst[location] += 1
        elif decision.action == "hold":
            _hold(conn, row, decision.until, decision.reason)
            report.held += 1
        elif decision.action == "suppress":
            _suppress(conn, row["id"], decision.reason or "suppressed", now)
            report.suppressed += 1
        else:
            _back_to_inbox(conn, row, now)
            report.stale += 1
    return claims, report


def _rules(row: dict, approval_expiry: timedelta) -> SendRules:
    return SendRules(
        window_start=row["quiet_hours_start"],
        window_end=row["quiet_hours_end"],
        max_per_day=row["max_messages_per_day"],
        max_per_week=row["max_messages_per_week"],
        approval_expiry=approval_expiry,
    )


def _claim(conn: psycopg.Connection, row: dict, run_id: str, now: datetime) -> Claim:
    conn.execute(
        """UPDATE app.messages SET status = 'queued', claimed_at = %s, claimed_by = %s,
               held_until = NULL, held_reason = NULL, send_attempts = send_attempts + 1,
               updated_at = %s
           WHERE id = %s""",
        (now, run_id, now, row["id"]),
    )
    _event(conn, "message_queued", row["id"], row["location_id"], row["correlation_id"],
           {"run_id": run_id})  # fmt: skip
    return Claim(
        id=row["id"], location_id=row["location_id"], client_id=row["client_id"],
        contact_id=row["contact_id"], channel=row["channel"], subject=row["subject"],
        text=row["text"], correlation_id=row["correlation_id"], purpose=row["purpose"],
        claimed_at=now, send_attempts=row["send_attempts"] + 1,
    )  # fmt: skip


def _hold(conn: psycopg.Connection, row: dict, until: datetime | None, reason: str | None) -> None:
    conn.execute(
        "UPDATE app.messages SET held_until = %s, held_reason = %s WHERE id = %s",
        (until, reason, row["id"]),
    )
    _event(conn, "message_held", row["id"], row["location_id"], row["correlation_id"],
           {"reason": reason, "until": until.isoformat() if until else None})  # fmt: skip


def _suppress(conn: psycopg.Connection, message_id: UUID, reason: str, now: datetime) -> None:
    row = conn.execute(
        """UPDATE app.messages SET status = 'suppressed', suppressed_reason = %s,
               claimed_at = NULL, claimed_by = NULL, held_until = NULL, updated_at = %s
           WHERE id = %s RETURNING location_id, correlation_id""",
        (reason, now, message_id),
    ).fetchone()
    _event(conn, "message_suppressed", message_id, row[0], row[1], {"reason": reason}, product=True)


def _back_to_inbox(conn: psycopg.Connection, row: dict, now: datetime) -> None:
    """An approval too old to act on: the trainer decides again on today's facts."""
    conn.execute(
        """UPDATE app.messages SET status = 'pending_approval', approved_body = NULL,
               approved_by = NULL, approved_at = NULL, decision = NULL, decided_at = NULL,
               held_until = NULL, held_reason = NULL, updated_at = %s
           WHERE id = %s""",
        (now, row["id"]),
    )
    _event(conn, "approval_expired", row["id"], row["location_id"], row["correlation_id"],
           {"approved_at": row["approved_at"].isoformat()})  # fmt: skip


def _brake(conn: psycopg.Connection, location_id: str, sent: int, now: datetime) -> None:
    """A burst beyond the studio's limit: stop the studio's sending and page a person."""
    reason = f"burst brake: {sent} messages in {BURST_WINDOW.seconds // 60} minutes"
    conn.execute(
        """UPDATE app.locations SET sending_paused_at = %s, sending_paused_reason = %s
           WHERE location_id = %s AND sending_paused_at IS NULL""",
        (now, reason, location_id),
    )
    record_event(conn, "sending_paused", actor=ACTOR, location_id=location_id,
                 entity_type="location", entity_id=location_id,
                 properties={"severity": "SEV1", "reason": reason})  # fmt: skip
    log.error("sending paused by the burst brake", severity="SEV1", location_id=location_id,
              sent=sent)  # fmt: skip


# --- facts read under the claim -------------------------------------------------------------


def _opt_outs(conn: psycopg.Connection, clients: list[UUID]) -> dict[tuple[UUID, str], str]:
    """(client, channel) → why the client may not be written to there: opted out in
    TrainU (a STOP reply, ingest), GHL DND on every channel, or DND on that channel."""
    found: dict[tuple[UUID, str], str] = {}
    for client_id, reason, dnd, sms, email in conn.execute(
        """SELECT c.id, CASE WHEN c.opted_out_at IS NOT NULL
                             THEN coalesce(c.opt_out_reason, 'opted out') END,
                  coalesce(g.dnd, false),
                  g.payload->'dndSettings'->'SMS'->>'status' = 'active',
                  g.payload->'dndSettings'->'Email'->>'status' = 'active'
           FROM app.clients c
           LEFT JOIN raw.ghl_contacts g
                  ON g.location_id = c.location_id AND g.contact_id = c.ghl_contact_id
           WHERE c.id = ANY(%s)""",
        (clients,),
    ):
        for channel, on_channel in (("SMS", sms), ("Email", email)):
            why = reason or ("GHL DND" if dnd else None)
            why = why or (f"GHL DND on {channel}" if on_channel else None)
            if why:
                found[(client_id, channel)] = why
    return found


def _may_confirm(conn: psycopg.Connection, message_ids: list[UUID]) -> set[UUID]:
    """Of these opt-out confirmations, the ones that may go: the client is opted out in
    TrainU while GHL has no DND on the channel (so GHL sent no confirmation of its own),
    and no other confirmation has gone to them since the opt-out."""
    if not message_ids:
        return set()
    return {row[0] for row in conn.execute(
        """SELECT m.id FROM app.messages m
           JOIN app.clients c ON c.id = m.client_id
           LEFT JOIN raw.ghl_contacts g
                  ON g.location_id = c.location_id AND g.contact_id = c.ghl_contact_id
           WHERE m.id = ANY(%s) AND c.opted_out_at IS NOT NULL AND NOT coalesce(g.dnd, false)
             AND coalesce(g.payload->'dndSettings'->m.channel->>'status', '') <> 'active'
             AND NOT EXISTS (
                 SELECT FROM app.messages o
                 WHERE o.client_id = m.client_id AND o.id <> m.id
                   AND o.purpose = 'opt_out_confirmation'
                   AND o.status IN ('queued', 'sent', 'delivered')
                   AND coalesce(o.sent_at, o.claimed_at) >= c.opted_out_at)""",
        (message_ids,),
    )}  # fmt: skip


def _recent_sends(
    conn: psycopg.Connection, clients: list[UUID], now: datetime
) -> defaultdict[UUID, list[tuple[datetime, bool]]]:
    """Each client's outbound messages of the last 7 days, whether TrainU or a trainer in
    GHL's own app sent them (GHL's copy and ours of one message count once)."""
    recent: defaultdict[UUID, list[tuple[datetime, bool]]] = defaultdict(list)
    for client_id, at, purpose in conn.execute(
        """SELECT c.id, r.date_added, m.purpose
           FROM app.clients c
           JOIN raw.ghl_messages r ON r.location_id = c.location_id
                                  AND r.contact_id = c.ghl_contact_id
           LEFT JOIN app.messages m ON m.location_id = r.location_id
                                   AND m.ghl_message_id = r.message_id
           WHERE c.id = ANY(%(clients)s) AND r.direction = 'outbound'
             AND r.date_added > %(since)s AND r.deleted_at IS NULL
           UNION ALL
           SELECT m.client_id, coalesce(m.sent_at, m.claimed_at), m.purpose
           FROM app.messages m
           WHERE m.client_id = ANY(%(clients)s) AND m.direction = 'outbound'
             AND (m.status = 'queued' OR m.sent_at > %(since)s)
             AND NOT EXISTS (SELECT 1 FROM raw.ghl_messages r
                             WHERE r.location_id = m.location_id
                               AND r.message_id = m.ghl_message_id)""",
        {"clients": clients, "since": now - policy.WEEK},
    ):
        recent[client_id].append((at, purpose in policy.SERVICE_PURPOSES))
    return recent


def _sent_since(
    conn: psycopg.Connection, locations: set[str], since: datetime
) -> defaultdict[str, int]:
    """What each studio sent since then, or has in flight (the clients' replies on the
    threads are not sends)."""
    counts: defaultdict[str, int] = defaultdict(int)
    for location_id, sent in conn.execute(
        """SELECT location_id, count(*) FROM app.messages
           WHERE location_id = ANY(%s) AND direction = 'outbound'
             AND (sent_at > %s OR status = 'queued')
           GROUP BY location_id""",
        (list(locations), since),
    ):
        counts[location_id] = sent
    return counts


def trigger_gone(conn: psycopg.Connection, row: dict, now: datetime) -> str | None:
    """Why the reason for this message no longer holds, if it does not: the booking it
    is about was cancelled or moved or has begun, the client has booked again since (a
    check-in or invitation is moot), or someone already answered the client's message."""
    trigger: dict[str, Any] = row["trigger"] or {}
    purpose = row["purpose"]
    if purpose in ("confirmation", "reminder") and trigger.get("appointment_id"):
        booking = conn.execute(
            """SELECT status, start_time, deleted_at FROM raw.ghl_appointments
               WHERE location_id = %s AND appointment_id = %s""",
            (row["location_id"], trigger["appointment_id"]),
        ).fetchone()
        if booking is None:
            return None
        status, start, deleted_at = booking
        if deleted_at is not None or status in ("cancelled", "invalid"):
            return "booking cancelled"
        if trigger.get("start_time") and start != datetime.fromisoformat(trigger["start_time"]):
            return "booking moved"
        if start <= now:
            return "session already started"
    if purpose in MOOT_WHEN_REBOOKED:
        rebooked = conn.execute(
            """SELECT 1 FROM raw.ghl_appointments
               WHERE location_id = %s AND contact_id = %s AND deleted_at IS NULL
                 AND status IN ('new', 'confirmed') AND start_time > %s
                 AND coalesce(date_added, source_updated_at) > %s
               LIMIT 1""",
            (row["location_id"], row["contact_id"], now, row["created_at"]),
        ).fetchone()
        if rebooked:
            return "client rebooked"
    if purpose == "reply" and trigger.get("message_id"):
        answered = conn.execute(
            """SELECT 1 FROM raw.ghl_messages asked
               JOIN raw.ghl_messages answer
                 ON answer.location_id = asked.location_id
                AND answer.contact_id = asked.contact_id
                AND answer.direction = 'outbound' AND answer.date_added > asked.date_added
               WHERE asked.location_id = %s AND asked.message_id = %s
               LIMIT 1""",
            (row["location_id"], trigger["message_id"]),
        ).fetchone()
        if answered:
            return "reply already answered"
    return None


# --- 2 and 3. send and record ---------------------------------------------------------------


def send(
    conn: psycopg.Connection, ghl: GhlClient, claim: Claim, *, run_id: str, clock: Clock
) -> Report:
    """Send one claimed message and record what GHL answered."""
    report = Report()
    checkpoint("claimed", claim.id)
    blocker = _last_look(conn, claim)
    if blocker == "paused":
        with conn.transaction():
            _release(conn, claim, None, "sending paused", clock())
        report.released += 1
        return report
    if blocker:
        with conn.transaction():
            _suppress(conn, claim.id, blocker, clock())
        report.suppressed += 1
        return report
    checkpoint("sending", claim.id)
    try:
        reply = ghl.send_message(
            claim.location_id, contact_id=claim.contact_id, channel=claim.channel,  # type: ignore[arg-type]
            message=claim.text, subject=claim.subject,
        )  # fmt: skip
    except RetryableGhlError as error:
        if error.status == 429:  # refused before anything was sent
            with conn.transaction():
                return _retry_later(conn, claim, f"GHL rate limit ({error})", clock())
        return _after_ambiguous(conn, ghl, claim, f"GHL {error.status}", clock)
    except GhlError as error:
        with conn.transaction():
            _fail(conn, claim, str(error), clock())  # "GHL 400: Contact not found (traceId ...)"
        report.failed += 1
        return report
    except httpx.TransportError as error:
        return _after_ambiguous(conn, ghl, claim, type(error).__name__, clock)
    checkpoint("sent_unrecorded", claim.id)
    with conn.transaction():
        _mark_sent(conn, claim, reply.get("messageId"), reply.get("conversationId"), clock(),
                   run_id)  # fmt: skip
    checkpoint("recorded", claim.id)
    report.sent += 1
    return report


def _last_look(conn: psycopg.Connection, claim: Claim) -> str | None:
    """Right before the call: the owner's kill switch, or an opt-out that landed after
    the claim (a STOP while the message was queued)."""
    paused = conn.execute(
        "SELECT sending_paused_at IS NOT NULL FROM app.locations WHERE location_id = %s",
        (claim.location_id,),
    ).fetchone()[0]
    if paused:
        return "paused"
    if claim.purpose == policy.OPT_OUT_CONFIRMATION and _may_confirm(conn, [claim.id]):
        return None
    return _opt_outs(conn, [claim.client_id]).get((claim.client_id, claim.channel))


def _mark_sent(
    conn: psycopg.Connection,
    claim: Claim,
    message_id: str | None,
    conversation_id: str | None,
    now: datetime,
    run_id: str | None,
) -> None:
    row = conn.execute(
        """UPDATE app.messages SET status = 'sent', sent_at = %s, ghl_message_id = %s,
               ghl_conversation_id = %s, claimed_at = NULL, claimed_by = NULL,
               failed_reason = NULL, updated_at = %s
           WHERE id = %s AND status = 'queued' RETURNING id""",
        (now, message_id, conversation_id, now, claim.id),
    ).fetchone()
    if row is None:  # a reconciliation got there first
        log.warning("sent message was no longer queued", message_id=str(claim.id))
        return
    _event(conn, "message_sent", claim.id, claim.location_id, claim.correlation_id,
                   {"channel": claim.channel, "purpose": claim.purpose, "run_id": run_id,
                    "ghl_message_id": message_id}, product=True)  # fmt: skip
    if message_id:  # GHL's delivery report may have landed before this commit
        apply_landed_status(conn, claim.location_id, [message_id])


def _fail(conn: psycopg.Connection, claim: Claim, reason: str, now: datetime) -> None:
    conn.execute(
        """UPDATE app.messages SET status = 'failed', failed_reason = %s, claimed_at = NULL,
               claimed_by = NULL, updated_at = %s
           WHERE id = %s AND status = 'queued'""",
        (reason, now, claim.id),
    )
    _event(conn, "message_failed", claim.id, claim.location_id, claim.correlation_id,
                   {"reason": reason, "attempts": claim.send_attempts}, product=True)  # fmt: skip


def _release(
    conn: psycopg.Connection, claim: Claim, until: datetime | None, reason: str, now: datetime
) -> None:
    """Back to approved (GHL has not sent it), due again at `until`."""
    conn.execute(
        """UPDATE app.messages SET status = 'approved', claimed_at = NULL, claimed_by = NULL,
               held_until = %s, held_reason = %s, updated_at = %s
           WHERE id = %s AND status = 'queued'""",
        (until, reason, now, claim.id),
    )
    _event(conn, "message_released", claim.id, claim.location_id, claim.correlation_id,
           {"reason": reason, "until": until.isoformat() if until else None})  # fmt: skip


def _retry_later(conn: psycopg.Connection, claim: Claim, reason: str, now: datetime) -> Report:
    """GHL did not send it: try again after a backoff, or give up after MAX_ATTEMPTS."""
    if claim.send_attempts >= MAX_ATTEMPTS:
        _fail(conn, claim, f"gave up after {claim.send_attempts} attempts: {reason}", now)
        return Report(failed=1)
    backoff = timedelta(seconds=min(5 * 2 ** (claim.send_attempts - 1), 600))
    _release(conn, claim, now + backoff, reason, now)
    return Report(retrying=1)


def _after_ambiguous(
    conn: psycopg.Connection, ghl: GhlClient, claim: Claim, why: str, clock: Clock
) -> Report:
    """GHL may or may not have sent it: look before doing anything else."""
    try:
        found = find_in_ghl(conn, ghl, claim)
    except (GhlError, httpx.TransportError) as error:
        # cannot tell yet: the claim stays queued, and `recover` looks again after the lease
        log.warning("send outcome unknown; left for reconciliation", message_id=str(claim.id),
                    error=str(error), after=why)  # fmt: skip
        return Report()
    with conn.transaction():
        if found is not None:
            _mark_sent(conn, claim, found["id"], found.get("conversationId"), clock(), None)
            return Report(sent=1, reconciled=1)
        return _retry_later(conn, claim, f"{why}; not in GHL's conversation", clock())


def find_in_ghl(conn: psycopg.Connection, ghl: GhlClient, claim: Claim) -> dict[str, Any] | None:
    """The claimed message in the client's GHL conversation, if GHL sent it: outbound,
    added after the claim, with exactly the approved text, and not already another of
    our messages."""
    since = claim.claimed_at - CLOCK_SKEW
    known = {
        row[0] for row in conn.execute(
            "SELECT ghl_message_id FROM app.messages WHERE location_id = %s AND client_id = %s "
            "AND ghl_message_id IS NOT NULL",
            (claim.location_id, claim.client_id),
        )
    }  # fmt: skip
    for conversation in ghl.conversations(claim.location_id, contact_id=claim.contact_id):
        for message in _messages_since(ghl, claim.location_id, conversation["id"], since):
            if (
                message.get("direction") == "outbound"
                and _same_text(message.get("body"), claim.text)
                and message.get("id") not in known
            ):
                return message
    return None


def _messages_since(
    ghl: GhlClient, location_id: str, conversation_id: str, since: datetime
) -> Iterator[dict[str, Any]]:
    """The conversation's messages newer than `since`, newest first (paging back)."""
    cursor = None
    while True:
        page = ghl.conversation_messages(location_id, conversation_id, last_message_id=cursor)
        for message in page.records:
            added = _added(message)
            if added is not None and added < since:
                return
            yield message
        if page.next_cursor is None:
            return
        cursor = page.next_cursor["lastMessageId"]


def recover(conn: psycopg.Connection, ghl: GhlClient, *, now: datetime, lease: timedelta) -> Report:
    """Claims whose run died (older than the lease): sent if GHL has the message, else
    approved again. Never re-sent without this look."""
    report = Report()
    with conn.transaction():
        with conn.cursor(row_factory=dict_row) as cur:
            rows = cur.execute(
                """SELECT m.id, m.location_id, m.client_id, c.ghl_contact_id AS contact_id,
                          m.channel, m.subject, m.approved_body AS text, m.correlation_id,
                          m.purpose, m.claimed_at, m.send_attempts
                   FROM app.messages m JOIN app.clients c ON c.id = m.client_id
                   WHERE m.status = 'queued' AND m.claimed_at < %s
                   FOR UPDATE OF m SKIP LOCKED""",
                (now - lease,),
            ).fetchall()
        for row in rows:
            stuck = Claim(**row)
            try:
                found = find_in_ghl(conn, ghl, stuck)
            except (GhlError, httpx.TransportError) as error:
                log.warning("cannot reconcile yet", message_id=str(stuck.id), error=str(error))
                continue
            if found is not None:
                _mark_sent(conn, stuck, found["id"], found.get("conversationId"), now, None)
                report.sent += 1
            else:
                _release(conn, stuck, None, "run ended before sending", now)
                report.released += 1
            report.reconciled += 1
    return report


# --- helpers ---------------------------------------------------------------------------------


def _same_text(theirs: Any, ours: str) -> bool:
    return isinstance(theirs, str) and " ".join(theirs.split()) == " ".join(ours.split())


def _added(message: dict[str, Any]) -> datetime | None:
    try:
        return parse_timestamp(message.get("dateAdded"))
    except ValueError:
        return None


def _event(
    conn: psycopg.Connection,
    event_type: str,
    message_id: UUID,
    location_id: str,
    correlation_id: UUID,
    properties: dict[str, Any],
    *,
    product: bool = False,
) -> None:
    """A transition of one message; `product` ones (sent, suppressed, failed) also go to
    the configured product analytics."""
    emit_event(conn, event_type, actor=ACTOR,
               analytics=configured_analytics() if product else None,
               location_id=location_id, entity_type="message", entity_id=str(message_id),
               correlation_id=correlation_id, properties=properties)  # fmt: skip
