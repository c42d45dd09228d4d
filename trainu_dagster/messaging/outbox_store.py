"""The outbox's persistence: every statement that reads what is due or records what became of it.

`outbox` runs the steps and `outbox_rules` and `policy` judge; this module only talks to
Postgres, on the connection and in the transaction its caller holds. It reads the
messages due (`due`, locked `FOR UPDATE SKIP LOCKED`, so two runs never share one), the
facts the rules need under that lock (opt-outs and DND, each client's recent sends, each
studio's burst, whether a trigger still holds), and the claims of runs that died
(`stuck_claims`). It writes each transition of a message, always with its `app.events`
row and the message's correlation id: queued, held, suppressed, back to the inbox, sent,
failed, released. And a studio's kill switch: the operator's (`set_paused`), the burst
brake's (`brake`); with `status` and `work_waiting`, what the CLI and the send loop ask.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row, dict_row

from trainu_dagster.messaging import outbox_rules, policy
from trainu_dagster.messaging.outbox_rules import ABOUT_A_BOOKING, BookingState, TriggerFacts
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.product_events import emit_event, record_event

ACTOR = "system:outbox"


@dataclass(frozen=True)
class Claim:
    """A message claimed for sending (`queued`): what the send and its record need."""

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


@dataclass(frozen=True)
class Due:
    """An approved message that is due, locked for this run, with its studio's rules."""

    id: UUID
    location_id: str
    client_id: UUID
    contact_id: str
    channel: str
    subject: str | None
    text: str
    correlation_id: UUID
    purpose: str | None
    trigger: dict[str, Any] | None
    approved_at: datetime
    created_at: datetime
    send_attempts: int
    timezone: str | None  # the client's, else the studio's
    quiet_hours_start: time
    quiet_hours_end: time
    max_messages_per_day: int
    max_messages_per_week: int
    burst_limit: int


# --- what is due ---------------------------------------------------------------------------

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


def due(
    conn: psycopg.Connection,
    *,
    now: datetime,
    limit: int,
    only: UUID | None,
    location_id: str | None,
) -> list[Due]:
    """Up to `limit` messages due, the longest waiting first, locked until the caller's
    transaction ends (`only`: that message; `location_id`: that studio's)."""
    with conn.cursor(row_factory=class_row(Due)) as cur:
        return cur.execute(
            DUE, {"now": now, "limit": limit, "only": only, "location": location_id}
        ).fetchall()


def due_locations(conn: psycopg.Connection, *, now: datetime, only: UUID | None) -> list[str]:
    """Studios with messages due (what `due` would lock), the longest waiting first."""
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


def stuck_claims(conn: psycopg.Connection, *, now: datetime, lease: timedelta) -> list[Claim]:
    """Claims older than the lease (their run died), locked until the caller's transaction
    ends, so only one run reconciles each."""
    with conn.cursor(row_factory=class_row(Claim)) as cur:
        return cur.execute(
            """SELECT m.id, m.location_id, m.client_id, c.ghl_contact_id AS contact_id,
                      m.channel, m.subject, m.approved_body AS text, m.correlation_id,
                      m.purpose, m.claimed_at, m.send_attempts
               FROM app.messages m JOIN app.clients c ON c.id = m.client_id
               WHERE m.status = 'queued' AND m.claimed_at < %s
               FOR UPDATE OF m SKIP LOCKED""",
            (now - lease,),
        ).fetchall()


def work_waiting(conn: psycopg.Connection, *, now: datetime, lease: timedelta) -> int:
    """How many messages a send run would act on now: approved and due in a studio that
    is sending, or claims left by a run that died (past their lease)."""
    row = conn.execute(
        """SELECT count(*) FROM app.messages m
           JOIN app.locations l ON l.location_id = m.location_id
           WHERE (m.status = 'approved' AND l.sending_paused_at IS NULL
                  AND coalesce(greatest(m.held_until, m.scheduled_for), '-infinity') <= %s)
              OR (m.status = 'queued' AND m.claimed_at < %s)""",
        (now, now - lease),
    ).fetchone()
    assert row is not None  # count(*) always answers
    waiting: int = row[0]
    return waiting


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


# --- facts read under the claim -------------------------------------------------------------


def opt_outs(conn: psycopg.Connection, clients: list[UUID]) -> dict[tuple[UUID, str], str]:
    """(client, channel) → why the client may not be written to there
    (`outbox_rules.opt_out_reasons`, from TrainU's opt-out and GHL's DND settings)."""
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
        reasons = outbox_rules.opt_out_reasons(reason, dnd, {"SMS": sms, "Email": email})
        for channel, why in reasons.items():
            found[(client_id, channel)] = why
    return found


def may_confirm(conn: psycopg.Connection, message_ids: list[UUID]) -> set[UUID]:
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


def recent_sends(
    conn: psycopg.Connection, clients: list[UUID], now: datetime
) -> defaultdict[UUID, list[tuple[datetime, bool]]]:
    """Each client's outbound messages of the last 7 days, whether TrainU or a trainer in
    GHL's own app sent them (GHL's copy and ours of one message count once), each with
    whether it was a service message."""
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


def sent_since(
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


def trigger_facts(conn: psycopg.Connection, message: Due, now: datetime) -> TriggerFacts:
    """What `outbox_rules.trigger_gone` needs for this message, read for its purpose only."""
    trigger: dict[str, Any] = message.trigger or {}
    if message.purpose in ABOUT_A_BOOKING and trigger.get("appointment_id"):
        with conn.cursor(row_factory=class_row(BookingState)) as cur:
            booking = cur.execute(
                """SELECT status, start_time, deleted_at FROM raw.ghl_appointments
                   WHERE location_id = %s AND appointment_id = %s""",
                (message.location_id, trigger["appointment_id"]),
            ).fetchone()
        return TriggerFacts(booking=booking)
    if message.purpose in policy.MOOT_WHEN_REBOOKED:
        rebooked = conn.execute(
            """SELECT 1 FROM raw.ghl_appointments
               WHERE location_id = %s AND contact_id = %s AND deleted_at IS NULL
                 AND status IN ('new', 'confirmed') AND start_time > %s
                 AND coalesce(date_added, source_updated_at) > %s
               LIMIT 1""",
            (message.location_id, message.contact_id, now, message.created_at),
        ).fetchone()
        return TriggerFacts(rebooked=rebooked is not None)
    if message.purpose == "reply" and trigger.get("message_id"):
        answered = conn.execute(
            """SELECT 1 FROM raw.ghl_messages asked
               JOIN raw.ghl_messages answer
                 ON answer.location_id = asked.location_id
                AND answer.contact_id = asked.contact_id
                AND answer.direction = 'outbound' AND answer.date_added > asked.date_added
               WHERE asked.location_id = %s AND asked.message_id = %s
               LIMIT 1""",
            (message.location_id, trigger["message_id"]),
        ).fetchone()
        return TriggerFacts(answered=answered is not None)
    return TriggerFacts()


def sending_paused(conn: psycopg.Connection, location_id: str) -> bool:
    """Whether the studio's kill switch is on (the owner's, an operator's, the brake's)."""
    row = conn.execute(
        "SELECT sending_paused_at IS NOT NULL FROM app.locations WHERE location_id = %s",
        (location_id,),
    ).fetchone()
    assert row is not None, f"unknown studio {location_id}"  # a claim's studio exists
    return bool(row[0])


def known_ghl_ids(conn: psycopg.Connection, claim: Claim) -> set[str]:
    """GHL's ids of the messages already recorded for the claim's client."""
    return {
        row[0] for row in conn.execute(
            "SELECT ghl_message_id FROM app.messages WHERE location_id = %s AND client_id = %s "
            "AND ghl_message_id IS NOT NULL",
            (claim.location_id, claim.client_id),
        )
    }  # fmt: skip


# --- 1. claim: what became of each due message ----------------------------------------------


def queue(conn: psycopg.Connection, message: Due, run_id: str, now: datetime) -> Claim:
    """Claimed by this run (`queued`): the durable record of who is sending it, since when."""
    conn.execute(
        """UPDATE app.messages SET status = 'queued', claimed_at = %s, claimed_by = %s,
               held_until = NULL, held_reason = NULL, send_attempts = send_attempts + 1,
               updated_at = %s
           WHERE id = %s""",
        (now, run_id, now, message.id),
    )
    _event(conn, "message_queued", message.id, message.location_id, message.correlation_id,
           {"run_id": run_id})  # fmt: skip
    return Claim(
        id=message.id, location_id=message.location_id, client_id=message.client_id,
        contact_id=message.contact_id, channel=message.channel, subject=message.subject,
        text=message.text, correlation_id=message.correlation_id, purpose=message.purpose,
        claimed_at=now, send_attempts=message.send_attempts + 1,
    )  # fmt: skip


def hold(
    conn: psycopg.Connection, message: Due, until: datetime | None, reason: str | None
) -> None:
    """Still approved, due again at `until` (quiet hours, a frequency cap)."""
    conn.execute(
        "UPDATE app.messages SET held_until = %s, held_reason = %s WHERE id = %s",
        (until, reason, message.id),
    )
    _event(conn, "message_held", message.id, message.location_id, message.correlation_id,
           {"reason": reason, "until": until.isoformat() if until else None})  # fmt: skip


def suppress(conn: psycopg.Connection, message_id: UUID, reason: str, now: datetime) -> None:
    """Never to be sent, and why (opted out, trigger gone...)."""
    row = conn.execute(
        """UPDATE app.messages SET status = 'suppressed', suppressed_reason = %s,
               claimed_at = NULL, claimed_by = NULL, held_until = NULL, updated_at = %s
           WHERE id = %s RETURNING location_id, correlation_id""",
        (reason, now, message_id),
    ).fetchone()
    assert row is not None, f"no message {message_id}"  # the caller holds it locked
    _event(conn, "message_suppressed", message_id, row[0], row[1], {"reason": reason}, product=True)


def back_to_inbox(conn: psycopg.Connection, message: Due, now: datetime) -> None:
    """An approval too old to act on: the trainer decides again on today's facts."""
    conn.execute(
        """UPDATE app.messages SET status = 'pending_approval', approved_body = NULL,
               approved_by = NULL, approved_at = NULL, decision = NULL, decided_at = NULL,
               held_until = NULL, held_reason = NULL, updated_at = %s
           WHERE id = %s""",
        (now, message.id),
    )
    _event(conn, "approval_expired", message.id, message.location_id, message.correlation_id,
           {"approved_at": message.approved_at.isoformat()})  # fmt: skip


def brake(conn: psycopg.Connection, location_id: str, reason: str, now: datetime) -> None:
    """The studio's sending stopped by the burst brake, as a SEV1 event for a person."""
    conn.execute(
        """UPDATE app.locations SET sending_paused_at = %s, sending_paused_reason = %s
           WHERE location_id = %s AND sending_paused_at IS NULL""",
        (now, reason, location_id),
    )
    record_event(conn, "sending_paused", actor=ACTOR, location_id=location_id,
                 entity_type="location", entity_id=location_id,
                 properties={"severity": "SEV1", "reason": reason})  # fmt: skip


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


# --- 3. record: what became of each claim ---------------------------------------------------


def mark_sent(
    conn: psycopg.Connection,
    claim: Claim,
    message_id: str | None,
    conversation_id: str | None,
    now: datetime,
    run_id: str | None,
) -> bool:
    """`sent`, with GHL's ids; False (nothing written) if the claim is no longer queued."""
    row = conn.execute(
        """UPDATE app.messages SET status = 'sent', sent_at = %s, ghl_message_id = %s,
               ghl_conversation_id = %s, claimed_at = NULL, claimed_by = NULL,
               failed_reason = NULL, updated_at = %s
           WHERE id = %s AND status = 'queued' RETURNING id""",
        (now, message_id, conversation_id, now, claim.id),
    ).fetchone()
    if row is None:
        return False
    _event(conn, "message_sent", claim.id, claim.location_id, claim.correlation_id,
                   {"channel": claim.channel, "purpose": claim.purpose, "run_id": run_id,
                    "ghl_message_id": message_id}, product=True)  # fmt: skip
    return True


def fail(conn: psycopg.Connection, claim: Claim, reason: str, now: datetime) -> None:
    """`failed` for good, with GHL's own words (or why we gave up) as the reason."""
    conn.execute(
        """UPDATE app.messages SET status = 'failed', failed_reason = %s, claimed_at = NULL,
               claimed_by = NULL, updated_at = %s
           WHERE id = %s AND status = 'queued'""",
        (reason, now, claim.id),
    )
    _event(conn, "message_failed", claim.id, claim.location_id, claim.correlation_id,
                   {"reason": reason, "attempts": claim.send_attempts}, product=True)  # fmt: skip


def release(
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
