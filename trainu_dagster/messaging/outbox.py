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

This module runs the steps; `policy` and `outbox_rules` judge (pure functions), and
`outbox_store` holds every statement.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import psycopg

from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ghl.errors import GhlError, RetryableGhlError
from trainu_dagster.messaging import outbox_rules, outbox_store, policy
from trainu_dagster.messaging.inbound import apply_landed_status
from trainu_dagster.messaging.outbox_store import Claim, Due, set_paused, status, work_waiting
from trainu_dagster.messaging.policy import SendFacts, SendRules
from trainu_dagster.observability.logging import get_logger

# The outbox's API; `Claim`, `status`, `set_paused` and `work_waiting` are the store's.
__all__ = [
    "Claim", "Clock", "Report", "checkpoint", "claim", "drain", "find_in_ghl", "recover",
    "send", "set_paused", "status", "work_waiting",
]  # fmt: skip

log = get_logger(__name__)
BATCH = 50
PARALLEL_STUDIOS = 8  # studios one send run sends to at once, each on its own connection
Clock = Callable[[], datetime]
# Test seam for crash injection: called with each step's name ("claimed", "sending",
# "sent_unrecorded", "recorded"); the default does nothing.
checkpoint: Callable[[str, UUID], None] = lambda step, message_id: None  # noqa: E731


COUNTS = ("sent", "held", "suppressed", "stale", "failed", "retrying", "released", "reconciled")


@dataclass
class Report:
    """What a run, a worker or a step did: messages by outcome, and studios paused."""

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
                for location_id in outbox_store.due_locations(conn, now=clock(), only=only):
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
                outbox_store.release(conn, one, None, "send run stopped", self.clock())
        return len(claims)


def _connector(conn: psycopg.Connection) -> Callable[[], psycopg.Connection]:
    """New autocommit connections with `conn`'s parameters (its password included)."""
    dsn, password = conn.info.dsn, conn.info.password
    if password:
        return lambda: psycopg.connect(dsn, autocommit=True, password=password)
    return lambda: psycopg.connect(dsn, autocommit=True)


# --- 1. claim --------------------------------------------------------------------------------


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
    rows = outbox_store.due(conn, now=now, limit=limit, only=only, location_id=location_id)
    if not rows:
        return [], report
    clients = list({row.client_id for row in rows})
    opted_out = outbox_store.opt_outs(conn, clients)
    confirming = outbox_store.may_confirm(
        conn, [r.id for r in rows if r.purpose == policy.OPT_OUT_CONFIRMATION]
    )
    recent = outbox_store.recent_sends(conn, clients, now)
    burst = outbox_store.sent_since(
        conn, {row.location_id for row in rows}, now - outbox_rules.BURST_WINDOW
    )
    claims: list[Claim] = []
    confirmed: set[UUID] = set()  # clients whose one confirmation is claimed
    for row in rows:
        location = row.location_id
        if location in report.paused:
            continue
        facts = SendFacts(
            purpose=row.purpose or "",
            approved_at=row.approved_at,
            zone=policy.zone_or_utc(row.timezone),
            opted_out=opted_out.get((row.client_id, row.channel)),
            confirms_opt_out=row.id in confirming and row.client_id not in confirmed,
            trigger_gone=outbox_rules.trigger_gone(
                row.trigger or {}, outbox_store.trigger_facts(conn, row, now), now
            ),
            recent=recent[row.client_id],
        )
        decision = policy.decide(facts, _rules(row, approval_expiry), now)
        if decision.action == "send" and (
            brake := outbox_rules.burst_brake(burst[location], row.burst_limit)
        ):
            outbox_store.brake(conn, location, brake, now)
            log.error("sending paused by the burst brake", severity="SEV1",
                      location_id=location, sent=burst[location])  # fmt: skip
            report.paused.append(location)
            continue
        if decision.action == "send":
            claims.append(outbox_store.queue(conn, row, run_id, now))
            if row.purpose == policy.OPT_OUT_CONFIRMATION:
                confirmed.add(row.client_id)
            recent[row.client_id].append((now, row.purpose in policy.SERVICE_PURPOSES))
            burst[location] += 1
        elif decision.action == "hold":
            outbox_store.hold(conn, row, decision.until, decision.reason)
            report.held += 1
        elif decision.action == "suppress":
            outbox_store.suppress(conn, row.id, decision.reason or "suppressed", now)
            report.suppressed += 1
        else:
            outbox_store.back_to_inbox(conn, row, now)
            report.stale += 1
    return claims, report


def _rules(row: Due, approval_expiry: timedelta) -> SendRules:
    """The studio's sending rules, as its settings stand."""
    return SendRules(
        window_start=row.quiet_hours_start,
        window_end=row.quiet_hours_end,
        max_per_day=row.max_messages_per_day,
        max_per_week=row.max_messages_per_week,
        approval_expiry=approval_expiry,
    )


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
            outbox_store.release(conn, claim, None, "sending paused", clock())
        report.released += 1
        return report
    if blocker:
        with conn.transaction():
            outbox_store.suppress(conn, claim.id, blocker, clock())
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
            # "GHL 400: Contact not found (traceId ...)"
            outbox_store.fail(conn, claim, str(error), clock())
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
    if outbox_store.sending_paused(conn, claim.location_id):
        return "paused"
    if claim.purpose == policy.OPT_OUT_CONFIRMATION and outbox_store.may_confirm(conn, [claim.id]):
        return None
    return outbox_store.opt_outs(conn, [claim.client_id]).get((claim.client_id, claim.channel))


def _mark_sent(
    conn: psycopg.Connection,
    claim: Claim,
    message_id: str | None,
    conversation_id: str | None,
    now: datetime,
    run_id: str | None,
) -> None:
    """Record the send, and the delivery report GHL may have sent before this commit."""
    if not outbox_store.mark_sent(conn, claim, message_id, conversation_id, now, run_id):
        # a reconciliation got there first
        log.warning("sent message was no longer queued", message_id=str(claim.id))
        return
    if message_id:
        apply_landed_status(conn, claim.location_id, [message_id])


def _retry_later(conn: psycopg.Connection, claim: Claim, reason: str, now: datetime) -> Report:
    """GHL did not send it: try again after a backoff, or give up after MAX_ATTEMPTS."""
    backoff = outbox_rules.retry_after(claim.send_attempts)
    if backoff is None:
        outbox_store.fail(
            conn, claim, f"gave up after {claim.send_attempts} attempts: {reason}", now
        )
        return Report(failed=1)
    outbox_store.release(conn, claim, now + backoff, reason, now)
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
    """The claimed message in the client's GHL conversation, if GHL sent it
    (`outbox_rules.is_lost_send`)."""
    since = outbox_rules.lost_send_window(claim.claimed_at)
    known = outbox_store.known_ghl_ids(conn, claim)
    for conversation in ghl.conversations(claim.location_id, contact_id=claim.contact_id):
        for message in _messages_since(ghl, claim.location_id, conversation["id"], since):
            if outbox_rules.is_lost_send(message, claim.text, known):
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
            added = outbox_rules.added_at(message)
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
        for stuck in outbox_store.stuck_claims(conn, now=now, lease=lease):
            try:
                found = find_in_ghl(conn, ghl, stuck)
            except (GhlError, httpx.TransportError) as error:
                log.warning("cannot reconcile yet", message_id=str(stuck.id), error=str(error))
                continue
            if found is not None:
                _mark_sent(conn, stuck, found["id"], found.get("conversationId"), now, None)
                report.sent += 1
            else:
                outbox_store.release(conn, stuck, None, "run ended before sending", now)
                report.released += 1
            report.reconciled += 1
    return report
