"""Drafting's persistence: what drafts are made from, read; drafts stored, replaced, withdrawn.

`drafts` runs the flow and `drafts_rules` decides; this module only talks to Postgres, on
the connection and in the transaction its caller holds. It reads the clients (`Client`),
the booking a happening is about, the thread a reply answers, each studio's voice and link
domains, the names a draft must not say, and what the state triggers find due (sessions
tomorrow, risks raised today, goal milestones). It writes a draft (`insert_draft`, which
the unique indexes make idempotent: a second one for a trigger or slot is not stored), a
regenerated text (`replace_draft`), an escalation, an opt-out and the withdrawals that
follow it (`withdraw`). Every write comes with its `app.events` row and, for the drafter's
own steps, an `app.agent_events` row with PII redacted.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import class_row, dict_row
from psycopg.types.json import Jsonb

from trainu_dagster.ingest.clients import record_opt_outs
from trainu_dagster.messaging.drafting import (
    Channel,
    DraftRequest,
    DraftResult,
    StudioVoice,
    ThreadMessage,
)
from trainu_dagster.messaging.drafts_rules import (
    Booking,
    Client,
    DraftPlan,
    DraftStatus,
    Escalation,
    GoalProgress,
    RaisedRisk,
    SessionAhead,
    Slot,
    safety_record,
    studio_voice,
    telemetry,
)
from trainu_dagster.messaging.safety import Verdict
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.logging import redact
from trainu_dagster.observability.product_events import emit_event

ACTOR = "system:drafts"
OPEN = ("draft", "pending_approval", "needs_manual")  # a draft's statuses until decided


# --- clients and what happened to them ------------------------------------------------------

CLIENTS = """
SELECT c.id, c.location_id, c.ghl_contact_id, c.name, c.email, c.phone,
       c.trainer_id, t.name AS trainer_name,
       c.opted_out_at IS NOT NULL OR coalesce(g.dnd, false) AS opted_out,
       coalesce(c.timezone, l.timezone) AS timezone
FROM app.clients c
JOIN app.locations l ON l.location_id = c.location_id
LEFT JOIN app.trainers t ON t.id = c.trainer_id
LEFT JOIN raw.ghl_contacts g ON g.location_id = c.location_id AND g.contact_id = c.ghl_contact_id
"""


def clients(conn: psycopg.Connection, ids: Sequence[UUID]) -> dict[UUID, Client]:
    """Each of these clients, as drafting sees them."""
    with conn.cursor(row_factory=class_row(Client)) as cur:
        rows = cur.execute(CLIENTS + "WHERE c.id = ANY(%s)", (list(ids),)).fetchall()
    return {row.id: row for row in rows}


def clients_of_contacts(
    conn: psycopg.Connection, location_id: str, contact_ids: set[str]
) -> dict[str, Client]:
    """The studio's clients for these GHL contacts, by contact id."""
    with conn.cursor(row_factory=class_row(Client)) as cur:
        rows = cur.execute(
            CLIENTS + "WHERE c.location_id = %s AND c.ghl_contact_id = ANY(%s)",
            (location_id, list(contact_ids)),
        ).fetchall()
    return {row.ghl_contact_id: row for row in rows}


def booking(
    conn: psycopg.Connection, location_id: str, appointment_id: str | None
) -> Booking | None:
    """The booking as GHL holds it now (None: unknown, or without a start time)."""
    if appointment_id is None:
        return None
    with conn.cursor(row_factory=class_row(Booking)) as cur:
        return cur.execute(
            """SELECT contact_id, start_time, status FROM raw.ghl_appointments
               WHERE location_id = %s AND appointment_id = %s AND start_time IS NOT NULL""",
            (location_id, appointment_id),
        ).fetchone()


def thread(
    conn: psycopg.Connection, location_id: str, contact_id: str
) -> tuple[ThreadMessage, ...]:
    """The last ten messages with the client, oldest first: the reply's context."""
    rows = conn.execute(
        """SELECT direction, payload->>'body', coalesce(date_added, source_updated_at)
           FROM raw.ghl_messages
           WHERE location_id = %s AND contact_id = %s AND payload->>'body' IS NOT NULL
           ORDER BY coalesce(date_added, source_updated_at) DESC NULLS LAST LIMIT 10""",
        (location_id, contact_id),
    ).fetchall()
    return tuple(ThreadMessage(direction, body, at) for direction, body, at in reversed(rows))


# --- what the state of the data says is due -------------------------------------------------


def sessions_ahead(conn: psycopg.Connection, *, now: datetime) -> list[SessionAhead]:
    """Sessions booked within the next 50 hours (whoever's tomorrow they fall on)."""
    with conn.cursor(row_factory=class_row(SessionAhead)) as cur:
        return cur.execute(
            """SELECT c.id AS client_id, a.location_id, a.appointment_id, a.start_time,
                      coalesce(c.timezone, l.timezone) AS timezone
               FROM raw.ghl_appointments a
               JOIN app.clients c ON c.location_id = a.location_id
                                 AND c.ghl_contact_id = a.contact_id
               JOIN app.locations l ON l.location_id = a.location_id
               WHERE a.deleted_at IS NULL AND a.status IN ('new', 'confirmed')
                 AND a.start_time > %(now)s
                 AND a.start_time < %(now)s + interval '50 hours'""",
            {"now": now},
        ).fetchall()


def risks_raised_today(conn: psycopg.Connection, *, now: datetime) -> list[RaisedRisk]:
    """Clients scored high today (in their studio's day) who were not high before."""
    with conn.cursor(row_factory=class_row(RaisedRisk)) as cur:
        return cur.execute(
            """SELECT i.id AS insight_id, i.client_id, i.location_id, i.reason, i.features
               FROM app.insights i JOIN app.locations l USING (location_id)
               WHERE i.risk_band = 'high'
                 AND i.scored_at = date_trunc('day', %(now)s::timestamptz AT TIME ZONE l.timezone)
                                   AT TIME ZONE l.timezone
                 AND coalesce((SELECT p.risk_band FROM app.insights p
                               WHERE p.client_id = i.client_id AND p.scored_at < i.scored_at
                               ORDER BY p.scored_at DESC LIMIT 1), 'none') <> 'high'""",
            {"now": now},
        ).fetchall()


def milestones_reached(conn: psycopg.Connection) -> list[GoalProgress]:
    """Goals, active or achieved, at least halfway done."""
    with conn.cursor(row_factory=class_row(GoalProgress)) as cur:
        return cur.execute(
            """SELECT goal_id, client_id, location_id, title, percent_complete
               FROM marts.goal_progress
               WHERE status IN ('active', 'achieved') AND percent_complete >= 50"""
        ).fetchall()


# --- what a draft is written and checked with -----------------------------------------------


def open_slots(conn: psycopg.Connection, client_ids: Sequence[UUID]) -> set[Slot]:
    """The slots of these clients' open drafts (`DraftPlan.slot`)."""
    return set(
        conn.execute(
            """SELECT client_id, purpose, coalesce(trigger->>'appointment_id', '')
               FROM app.messages WHERE client_id = ANY(%s) AND status = ANY(%s)""",
            (list(client_ids), list(OPEN)),
        )
    )


def drafted_keys(conn: psycopg.Connection, keys: Sequence[str]) -> set[str]:
    """Which of these idempotency keys a message has already."""
    return {
        key for (key,) in conn.execute(
            "SELECT idempotency_key FROM app.messages WHERE idempotency_key = ANY(%s)",
            (list(keys),),
        )
    }  # fmt: skip


def voices(conn: psycopg.Connection, location_ids: set[str]) -> dict[str, StudioVoice]:
    """Each studio's voice as its owner set it (`app.locations.draft_voice`)."""
    rows = conn.execute(
        "SELECT location_id, name, draft_voice FROM app.locations WHERE location_id = ANY(%s)",
        (list(location_ids),),
    ).fetchall()
    return {location_id: studio_voice(name, voice) for location_id, name, voice in rows}


def link_domains(conn: psycopg.Connection, location_ids: set[str]) -> dict[str, tuple[str, ...]]:
    """The link domains each studio's owner allows in drafts (beside the install's own)."""
    rows = conn.execute(
        "SELECT location_id, allowed_link_domains FROM app.locations WHERE location_id = ANY(%s)",
        (list(location_ids),),
    ).fetchall()
    return {location_id: tuple(domains) for location_id, domains in rows}


def names_by_book(
    conn: psycopg.Connection, plans: Sequence[DraftPlan], clients: dict[UUID, Client]
) -> dict[tuple[str, UUID | None], list[tuple[UUID, str]]]:
    """Per studio and trainer, the clients' names: the people a draft could wrongly name."""
    books = {(p.location_id, clients[p.client_id].trainer_id) for p in plans}
    names: dict[tuple[str, UUID | None], list[tuple[UUID, str]]] = defaultdict(list)
    for location_id, trainer_id, client_id, name in conn.execute(
        """SELECT location_id, trainer_id, id, name FROM app.clients
           WHERE (location_id, trainer_id) IN (SELECT * FROM unnest(%s::text[], %s::uuid[]))
              OR (location_id = ANY(%s) AND trainer_id IS NULL)""",
        ([b[0] for b in books], [b[1] for b in books], [b[0] for b in books if b[1] is None]),
    ):
        names[(location_id, trainer_id)].append((client_id, name))
    return names


def stored_draft(conn: psycopg.Connection, message_id: UUID) -> tuple[DraftPlan, str] | None:
    """A stored draft as the plan it was made from, and its current text (None: no such
    outbound message)."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """SELECT purpose, location_id, client_id, idempotency_key, draft_facts, trigger,
                      correlation_id, channel, scheduled_for, insight_id, body
               FROM app.messages WHERE id = %s AND direction = 'outbound'""",
            (message_id,),
        ).fetchone()
    if row is None:
        return None
    plan = DraftPlan(
        purpose=row["purpose"], location_id=row["location_id"],
        client_id=row["client_id"], key=row["idempotency_key"], facts=row["draft_facts"],
        trigger=row["trigger"], correlation_id=row["correlation_id"],
        channel=_channel(row["channel"]), scheduled_for=row["scheduled_for"],
        insight_id=row["insight_id"],
    )  # fmt: skip
    body: str = row["body"]
    return plan, body


def _channel(value: str) -> Channel:
    """A stored channel (the column's CHECK allows only these)."""
    if value == "SMS":
        return "SMS"
    if value == "Email":
        return "Email"
    raise ValueError(f"unknown channel {value!r}")


# --- writing drafts -------------------------------------------------------------------------


def insert_draft(
    conn: psycopg.Connection,
    plan: DraftPlan,
    request: DraftRequest,
    result: DraftResult,
    verdict: Verdict,
    client: Client,
    status: DraftStatus,
) -> UUID | None:
    """The draft stored with its safety verdict, its agent event and `draft_created`; None
    if another run stored one for its trigger or slot meanwhile."""
    row = conn.execute(
        """INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel,
               status, subject, body, draft_body, generator, purpose, safety, insight_id,
               trigger, draft_facts, idempotency_key, scheduled_for, correlation_id)
           VALUES (%s, %s, %s, 'outbound', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                   coalesce(%s, gen_random_uuid()))
           ON CONFLICT DO NOTHING RETURNING id""",
        (
            plan.location_id, plan.client_id, client.trainer_id, request.channel, status,
            result.subject, result.text, result.text, result.generator, plan.purpose,
            Jsonb(safety_record(result, verdict)), plan.insight_id, Jsonb(plan.trigger),
            Jsonb(plan.facts), plan.key, plan.scheduled_for, plan.correlation_id,
        ),
    ).fetchone()  # fmt: skip
    if row is None:
        return None
    message_id: UUID = row[0]
    _agent_event(conn, plan.location_id, plan.client_id, message_id, plan.correlation_id,
                 "draft", telemetry(result, verdict))  # fmt: skip
    emit_event(conn, "draft_created", actor=ACTOR, analytics=configured_analytics(),
               location_id=plan.location_id, entity_type="message", entity_id=str(message_id),
               correlation_id=plan.correlation_id,
               properties={"purpose": plan.purpose, "generator": result.generator,
                           "needs_manual": status != "pending_approval"})  # fmt: skip
    return message_id


def replace_draft(
    conn: psycopg.Connection,
    message_id: UUID,
    plan: DraftPlan,
    result: DraftResult,
    verdict: Verdict,
    *,
    status: DraftStatus,
    instruction: str,
    now: datetime,
) -> None:
    """A regenerated text in place of the draft's, with its verdict and agent event."""
    conn.execute(
        """UPDATE app.messages SET body = %s, draft_body = %s, subject = %s, generator = %s,
               safety = %s, status = %s, updated_at = %s
           WHERE id = %s""",
        (result.text, result.text, result.subject, result.generator,
         Jsonb(safety_record(result, verdict)), status, now, message_id),
    )  # fmt: skip
    payload = {**telemetry(result, verdict), "instruction": instruction}
    _agent_event(conn, plan.location_id, plan.client_id, message_id, plan.correlation_id,
                 "regenerate", payload)  # fmt: skip


def escalate(conn: psycopg.Connection, item: Escalation) -> UUID | None:
    """The owner's `escalated` item, with `draft_escalated`; None if it exists already."""
    row = conn.execute(
        """INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel,
               status, body, escalation_reason, purpose, trigger, idempotency_key, correlation_id)
           VALUES (%s, %s, %s, 'outbound', %s, 'escalated', %s, %s, 'reply', %s, %s, %s)
           ON CONFLICT DO NOTHING RETURNING id""",
        (item.location_id, item.client_id, item.trainer_id, item.channel, item.text,
         item.category, Jsonb(item.trigger), item.key, item.correlation_id),
    ).fetchone()  # fmt: skip
    if row is None:
        return None
    message_id: UUID = row[0]
    emit_event(conn, "draft_escalated", actor=ACTOR, analytics=configured_analytics(),
               location_id=item.location_id, entity_type="message", entity_id=str(message_id),
               correlation_id=item.correlation_id,
               properties={"category": item.category})  # fmt: skip
    _agent_event(conn, item.location_id, item.client_id, message_id, item.correlation_id,
                 "escalate", {"category": item.category})  # fmt: skip
    return message_id


def opt_out(
    conn: psycopg.Connection, location_id: str, contact_id: str, client_id: UUID, reason: str
) -> int:
    """The client may no longer be written to: recorded at once, and every draft and
    approved message waiting for them suppressed; returns how many were."""
    record_opt_outs(conn, location_id, [contact_id], reason)
    return withdraw(conn, client_id, "client opted out", approved_too=True)


def withdraw(
    conn: psycopg.Connection,
    client_id: UUID,
    reason: str,
    *,
    appointment: str | None = None,
    purposes: Iterable[str] | None = None,
    unless_start: datetime | None = None,
    approved_too: bool = False,
) -> int:
    """Suppress the client's open drafts whose trigger no longer holds; returns how many.
    `appointment`: only those about it; `unless_start`: keep those for this start time;
    `approved_too`: approved messages waiting to be sent as well (an opt-out)."""
    statuses = [*OPEN, "approved"] if approved_too else list(OPEN)
    rows = conn.execute(
        """UPDATE app.messages SET status = 'suppressed', suppressed_reason = %(reason)s,
               held_until = NULL, updated_at = now()
           WHERE client_id = %(client)s AND status = ANY(%(statuses)s)
             AND (%(appointment)s::text IS NULL OR trigger->>'appointment_id' = %(appointment)s)
             AND (%(purposes)s::text[] IS NULL OR purpose = ANY(%(purposes)s))
             AND (%(start)s::timestamptz IS NULL
                  OR (trigger->>'start_time')::timestamptz <> %(start)s)
           RETURNING id, location_id, correlation_id, purpose""",
        {"reason": reason, "client": client_id, "appointment": appointment, "statuses": statuses,
         "purposes": list(purposes) if purposes is not None else None, "start": unless_start},
    ).fetchall()  # fmt: skip
    for message_id, location_id, correlation_id, purpose in rows:
        emit_event(conn, "draft_withdrawn", actor=ACTOR, location_id=location_id,
                   entity_type="message", entity_id=str(message_id),
                   correlation_id=correlation_id,
                   properties={"reason": reason, "purpose": purpose})  # fmt: skip
    return len(rows)


def _agent_event(
    conn: psycopg.Connection,
    location_id: str,
    client_id: UUID,
    message_id: UUID,
    correlation_id: UUID | None,
    step: str,
    payload: dict[str, Any],
) -> None:
    """One agent step, PII redacted (prompts and outputs are stored only redacted)."""
    conn.execute(
        """INSERT INTO app.agent_events (location_id, agent, event_type, client_id, message_id,
                                         payload, correlation_id)
           VALUES (%s, 'drafter', %s, %s, %s, %s, %s)""",
        (location_id, step, client_id, message_id, Jsonb(redact(payload)), correlation_id),
    )
