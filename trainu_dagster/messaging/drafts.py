"""Drafts in the inbox: made for every trigger, checked for safety, withdrawn when stale.

Event triggers come from webhook deliveries, in the ingest run that applied them
(`react`): a booking made → confirmation; a no-show → same-day check-in; a late
cancellation → reschedule offer; a client's question → suggested reply with the thread;
a message about injury, illness, billing or the like → an `escalated` item for the owner
instead of a draft. State triggers come from the drafts asset (`plan_state_drafts`):
tomorrow's sessions → reminders, scheduled for the day before in the client's local
time; a risk band raised to high → re-engagement; a goal milestone → congratulations.

Every draft is validated (`messaging.safety`) whatever produced it; one that fails is
regenerated once with the failed rules as constraints, then kept as `needs_manual`. At
most one open draft per client and purpose (and booking, for one about a booking), none
for an opted-out client, and each has an idempotency key named for its trigger, so
reacting twice to one trigger makes one draft. Nothing here sends: a human approves every
draft first.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from trainu_dagster.ghl.opt_out import is_carrier_keyword
from trainu_dagster.ghl.payloads import ParsedEvent
from trainu_dagster.ingest.clients import ensure_clients, record_opt_outs
from trainu_dagster.ingest.process import WebhookEvent
from trainu_dagster.messaging.classify import CRISIS_GUIDANCE, classify_inbound
from trainu_dagster.messaging.drafting import (
    DraftRequest,
    DraftResult,
    OpenAIDrafter,
    StudioVoice,
    TemplateDrafter,
    ThreadMessage,
)
from trainu_dagster.messaging.policy import (
    MOOT_WHEN_REBOOKED,
    OPT_OUT_CONFIRMATION,
    zone_or_utc,
)
from trainu_dagster.messaging.safety import SafetyContext, Verdict, validate_draft
from trainu_dagster.messaging.triggers import Happening, happenings
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.logging import get_logger, redact
from trainu_dagster.observability.product_events import emit_event
from trainu_dagster.settings import get_settings

log = get_logger(__name__)
Drafter = TemplateDrafter | OpenAIDrafter
OPEN = ("draft", "pending_approval", "needs_manual")
LATE_CANCEL = timedelta(hours=24)  # as the bookings mart's default late_cancel_hours
CHECK_IN_WITHIN = timedelta(hours=24)  # a no-show older than this gets no "same-day" check-in
REMINDER_AT = time(9, 0)  # the day before the session, client's local time
MILESTONES = ((100, "reached your goal"), (50, "made it halfway to your goal"))


@dataclass(frozen=True)
class DraftPlan:
    """A draft to make: for whom, why (its trigger) and with which facts."""

    purpose: str
    location_id: str
    client_id: UUID
    key: str  # the idempotency key: one draft per trigger, however often it is seen
    facts: dict[str, str]
    trigger: dict[str, Any]
    correlation_id: UUID | None = None
    channel: str | None = None  # None: SMS if the client has a phone, else Email
    scheduled_for: datetime | None = None
    insight_id: UUID | None = None
    thread: tuple[ThreadMessage, ...] = ()

    @property
    def slot(self) -> tuple[UUID, str, str]:
        """Where at most one draft may be open (the database's unique index says the same):
        per client and purpose, and per booking for a draft about one, so a client who books
        Monday and Thursday at once has both sessions confirmed."""
        return self.client_id, self.purpose, self.trigger.get("appointment_id") or ""


@dataclass
class Outcome:
    created: list[UUID] = field(default_factory=list)
    needs_manual: list[UUID] = field(default_factory=list)
    escalated: list[UUID] = field(default_factory=list)
    withdrawn: int = 0
    skipped: int = 0  # opted out, already drafted, or nowhere to send


# --- reacting to deliveries ----------------------------------------------------------------


def react_to_deliveries(
    conn: psycopg.Connection,
    delivered: Iterable[tuple[WebhookEvent, ParsedEvent]],
    drafter: Drafter,
    *,
    now: datetime,
) -> Outcome:
    """`react` to a batch of applied webhook deliveries (the ingest run's hook)."""
    found = [
        happening
        for event, parsed in delivered
        for happening in happenings(
            parsed, correlation_id=event.correlation_id, webhook_event_id=event.id
        )
    ]
    return react(conn, found, drafter, now=now) if found else Outcome()


def react(
    conn: psycopg.Connection, happenings: Sequence[Happening], drafter: Drafter, *, now: datetime
) -> Outcome:
    """Drafts, escalations and withdrawals for what the applied deliveries say happened.
    The caller owns the transaction (separate from the ingest's own: a drafting failure
    must never undo an applied delivery)."""
    outcome = Outcome()
    by_location: dict[str, list[Happening]] = defaultdict(list)
    for happening in happenings:
        by_location[happening.location_id].append(happening)
    plans: list[DraftPlan] = []
    for location_id, found in by_location.items():
        ensure_clients(conn, location_id, (h.contact_id for h in found))
        clients = _clients(conn, location_id, {h.contact_id for h in found})
        for happening in found:
            client = clients.get(happening.contact_id)
            if client is None:  # a contact GHL has not told us about yet: nothing to say
                continue
            plans.extend(_react_to(conn, happening, client, outcome, now))
    make_drafts(conn, plans, drafter, now=now, outcome=outcome)
    return outcome


def _react_to(
    conn: psycopg.Connection, h: Happening, client: dict, outcome: Outcome, now: datetime
) -> list[DraftPlan]:
    if h.kind == "opted_out":
        outcome.withdrawn += opt_out(conn, h.location_id, h.contact_id, client["id"], "GHL DND")
        return []
    if h.kind == "inbound":
        return _inbound(conn, h, client, outcome)
    appointment = _appointment(conn, h.location_id, h.appointment_id)
    if appointment is None or appointment["contact_id"] != h.contact_id:
        return []
    facts = _session_facts(client, appointment)
    if h.kind in ("cancelled", "deleted"):
        reason = "booking cancelled" if h.kind == "cancelled" else "booking deleted"
        outcome.withdrawn += withdraw(conn, client["id"], reason, appointment=h.appointment_id)
        notice = appointment["start_time"] - (h.at or now)
        if (
            h.kind == "cancelled"
            and notice < LATE_CANCEL
            and appointment["start_time"] > now - LATE_CANCEL
        ):
            return [_plan("reschedule_offer", client, h, facts, appointment)]
        return []
    if h.kind == "no_show":
        if now - appointment["start_time"] <= CHECK_IN_WITHIN:
            return [_plan("no_show_checkin", client, h, facts, appointment)]
        return []
    # booked, or updated: a booking in the future is news worth confirming once per time
    if appointment["start_time"] <= now or appointment["status"] not in ("new", "confirmed"):
        return []
    moved = withdraw(conn, client["id"], "booking moved", appointment=h.appointment_id,
                     unless_start=appointment["start_time"])  # fmt: skip
    outcome.withdrawn += moved
    if h.kind == "booked":
        outcome.withdrawn += withdraw(
            conn, client["id"], "client rebooked", purposes=MOOT_WHEN_REBOOKED
        )
    if h.kind == "booked" or moved:
        return [_plan("confirmation", client, h, facts, appointment)]
    return []


def _inbound(
    conn: psycopg.Connection, h: Happening, client: dict, outcome: Outcome
) -> list[DraftPlan]:
    verdict = classify_inbound(h.text or "")
    if verdict.opt_out:
        outcome.withdrawn += opt_out(conn, h.location_id, h.contact_id, client["id"], "STOP reply")
        if is_carrier_keyword(h.text or ""):
            return []  # GHL acts on its STOP keywords and confirms them itself
        return [DraftPlan(
            purpose=OPT_OUT_CONFIRMATION, location_id=h.location_id, client_id=client["id"],
            key=f"{OPT_OUT_CONFIRMATION}:{h.location_id}:{h.message_id}", facts={},
            trigger={"event": "inbound_message", "message_id": h.message_id,
                     "webhook_event_id": h.webhook_event_id, "intent": "opt_out"},
            correlation_id=h.correlation_id, channel=_sendable_channel(h.channel),
        )]  # fmt: skip
    if verdict.escalation is not None:
        outcome.escalated.extend(_escalate(conn, h, client, verdict.escalation))
        return []
    if verdict.intent not in ("question", "reschedule"):
        return []
    thread = _thread(conn, h.location_id, h.contact_id)
    return [
        DraftPlan(
            purpose="reply",
            location_id=h.location_id,
            client_id=client["id"],
            key=f"reply:{h.location_id}:{h.message_id}",
            facts={"question": h.text or ""},
            trigger={
                "event": "inbound_message",
                "message_id": h.message_id,
                "webhook_event_id": h.webhook_event_id,
                "intent": verdict.intent,
            },  # fmt: skip
            correlation_id=h.correlation_id,
            channel=_sendable_channel(h.channel),
            thread=thread,
        )
    ]


def _plan(
    purpose: str, client: dict, h: Happening, facts: dict[str, str], appointment: dict
) -> DraftPlan:
    start = appointment["start_time"]
    return DraftPlan(
        purpose=purpose,
        location_id=h.location_id,
        client_id=client["id"],
        key=f"{purpose}:{h.location_id}:{h.appointment_id}:{start.isoformat()}",
        facts=facts,
        trigger={
            "event": h.kind,
            "appointment_id": h.appointment_id,
            "start_time": start.isoformat(),
            "webhook_event_id": h.webhook_event_id,
        },  # fmt: skip
        correlation_id=h.correlation_id,
    )


def _escalate(conn: psycopg.Connection, h: Happening, client: dict, category: str) -> list[UUID]:
    """The owner handles it: an `escalated` item with the message, never a draft."""
    trigger = {"event": "inbound_message", "message_id": h.message_id, "category": category,
               "webhook_event_id": h.webhook_event_id}  # fmt: skip
    if category == "self_harm":
        trigger["guidance"] = CRISIS_GUIDANCE
    row = conn.execute(
        """INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel,
               status, body, escalation_reason, purpose, trigger, idempotency_key, correlation_id)
           VALUES (%s, %s, %s, 'outbound', %s, 'escalated', %s, %s, 'reply', %s, %s, %s)
           ON CONFLICT DO NOTHING RETURNING id""",
        (h.location_id, client["id"], client["trainer_id"], _sendable_channel(h.channel) or "SMS",
         h.text or "", category, Jsonb(trigger), f"escalation:{h.location_id}:{h.message_id}",
         h.correlation_id),
    ).fetchone()  # fmt: skip
    if row is None:
        return []
    emit_event(conn, "draft_escalated", actor="system:drafts", analytics=configured_analytics(),
               location_id=h.location_id, entity_type="message", entity_id=str(row[0]),
               correlation_id=h.correlation_id, properties={"category": category})  # fmt: skip
    _agent_event(conn, h.location_id, client["id"], row[0], h.correlation_id, "escalate",
                 {"category": category})  # fmt: skip
    return [row[0]]


# --- the drafts asset: state triggers ------------------------------------------------------

REMINDERS = """
SELECT c.id AS client_id, a.location_id, a.appointment_id, a.start_time,
       coalesce(c.timezone, l.timezone) AS timezone
FROM raw.ghl_appointments a
JOIN app.clients c ON c.location_id = a.location_id AND c.ghl_contact_id = a.contact_id
JOIN app.locations l ON l.location_id = a.location_id
WHERE a.deleted_at IS NULL AND a.status IN ('new', 'confirmed')
  AND a.start_time > %(now)s AND a.start_time < %(now)s + interval '50 hours'
"""
RAISED_TODAY = """
SELECT i.id AS insight_id, i.client_id, i.location_id, i.reason, i.features
FROM app.insights i JOIN app.locations l USING (location_id)
WHERE i.risk_band = 'high'
  AND i.scored_at = date_trunc('day', %(now)s::timestamptz AT TIME ZONE l.timezone)
                    AT TIME ZONE l.timezone
  AND coalesce((SELECT p.risk_band FROM app.insights p
                WHERE p.client_id = i.client_id AND p.scored_at < i.scored_at
                ORDER BY p.scored_at DESC LIMIT 1), 'none') <> 'high'
"""
MILESTONES_REACHED = """
SELECT goal_id, client_id, location_id, title, percent_complete
FROM marts.goal_progress WHERE status IN ('active', 'achieved') AND percent_complete >= 50
"""


def plan_state_drafts(conn: psycopg.Connection, *, now: datetime) -> list[DraftPlan]:
    """Reminders for tomorrow's sessions, re-engagement for today's newly high risks,
    congratulations for milestones: whatever the state of the data says is due now."""
    plans: list[DraftPlan] = []
    with conn.cursor(row_factory=dict_row) as cur:
        for row in cur.execute(REMINDERS, {"now": now}).fetchall():
            zone = zone_or_utc(row["timezone"])
            local = row["start_time"].astimezone(zone)
            if local.date() != (now.astimezone(zone) + timedelta(days=1)).date():
                continue  # only the sessions of the client's tomorrow
            at = datetime.combine(local.date() - timedelta(days=1), REMINDER_AT, zone)
            plans.append(
                DraftPlan(
                    purpose="reminder",
                    location_id=row["location_id"],
                    client_id=row["client_id"],
                    key=f"reminder:{row['location_id']}:{row['appointment_id']}:"
                    f"{row['start_time'].isoformat()}",
                    facts={"session_when": session_when(row["start_time"], zone)},
                    trigger={
                        "event": "session_tomorrow",
                        "appointment_id": row["appointment_id"],
                        "start_time": row["start_time"].isoformat(),
                    },  # fmt: skip
                    scheduled_for=max(at.astimezone(UTC), now),
                )
            )
        for row in cur.execute(RAISED_TODAY, {"now": now}).fetchall():
            days = row["features"].get("days_since_last_attended")
            plans.append(
                DraftPlan(
                    purpose="re_engagement",
                    location_id=row["location_id"],
                    client_id=row["client_id"],
                    key=f"re_engagement:{row['insight_id']}",
                    facts={
                        "reason": row["reason"],
                        "days_since_visit": str(int(days)) if days is not None else "",
                    },  # fmt: skip
                    trigger={"event": "risk_high", "insight_id": str(row["insight_id"])},
                    insight_id=row["insight_id"],
                )
            )
        for row in cur.execute(MILESTONES_REACHED).fetchall():
            level, achievement = next(m for m in MILESTONES if row["percent_complete"] >= m[0])
            plans.append(
                DraftPlan(
                    purpose="milestone",
                    location_id=row["location_id"],
                    client_id=row["client_id"],
                    key=f"milestone:{row['goal_id']}:{level}",
                    facts={"goal_title": row["title"], "achievement": achievement},
                    trigger={
                        "event": "goal_milestone",
                        "goal_id": str(row["goal_id"]),
                        "percent": level,
                    },  # fmt: skip
                )
            )
    return plans


# --- making drafts -----------------------------------------------------------------------------


def make_drafts(
    conn: psycopg.Connection,
    plans: Sequence[DraftPlan],
    drafter: Drafter,
    *,
    now: datetime,
    outcome: Outcome | None = None,
) -> Outcome:
    """Draft, validate and store each plan that is still wanted; the caller commits."""
    outcome = outcome or Outcome()
    wanted, clients = _wanted(conn, plans)
    outcome.skipped += len(plans) - len(wanted)
    if not wanted:
        return outcome
    voices = _voices(conn, {p.location_id for p in wanted})
    requests = [_request(p, clients[p.client_id], voices[p.location_id]) for p in wanted]
    results, verdicts = _draft_checked(drafter, requests, _contexts(conn, wanted, clients))
    with conn.pipeline():  # the agent events go without waiting; only RETURNINGs wait
        for plan, request, result, verdict in zip(wanted, requests, results, verdicts, strict=True):
            message_id = _store(conn, plan, request, result, verdict, clients[plan.client_id])
            if message_id is None:  # another run made it meanwhile
                outcome.skipped += 1
                continue
            ready = _ready(result, verdict)
            (outcome.created if ready else outcome.needs_manual).append(message_id)
            _agent_event(conn, plan.location_id, plan.client_id, message_id, plan.correlation_id,
                         "draft", _telemetry(result, verdict))  # fmt: skip
            emit_event(conn, "draft_created", actor="system:drafts",
                       analytics=configured_analytics(), location_id=plan.location_id,
                       entity_type="message", entity_id=str(message_id),
                       correlation_id=plan.correlation_id,
                       properties={"purpose": plan.purpose, "generator": result.generator,
                                   "needs_manual": not ready})  # fmt: skip
    return outcome


def _draft_checked(
    drafter: Drafter, requests: list[DraftRequest], contexts: list[SafetyContext]
) -> tuple[list[DraftResult], list[Verdict]]:
    """Each request drafted and validated; one that fails is drafted once more, told what
    failed."""
    results = _draft_all(drafter, requests)
    verdicts = [validate_draft(r.text, c) for r, c in zip(results, contexts, strict=True)]
    retry = [i for i, v in enumerate(verdicts) if not v.ok]
    if retry:
        again = _draft_all(drafter, [_avoiding(requests[i], verdicts[i]) for i in retry])
        for i, result in zip(retry, again, strict=True):
            results[i], verdicts[i] = result, validate_draft(result.text, contexts[i])
    return results, verdicts


def _ready(result: DraftResult, verdict: Verdict) -> bool:
    """Ready for approval: passed every rule, and the model did not ask for a person."""
    return verdict.ok and not result.escalate


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
        emit_event(conn, "draft_withdrawn", actor="system:drafts", location_id=location_id,
                   entity_type="message", entity_id=str(message_id),
                   correlation_id=correlation_id,
                   properties={"reason": reason, "purpose": purpose})  # fmt: skip
    return len(rows)


def _wanted(
    conn: psycopg.Connection, plans: Sequence[DraftPlan]
) -> tuple[list[DraftPlan], dict[UUID, dict]]:
    """Plans whose client may be written to, with no open draft in their slot and no draft
    for that trigger yet (checked before drafting, so no model call is wasted)."""
    ids = list({p.client_id for p in plans})
    clients = _client_rows(conn, ids)
    taken = set(
        conn.execute(
            """SELECT client_id, purpose, coalesce(trigger->>'appointment_id', '')
               FROM app.messages WHERE client_id = ANY(%s) AND status = ANY(%s)""",
            (ids, list(OPEN)),
        )
    )
    done = {
        key for (key,) in conn.execute(
            "SELECT idempotency_key FROM app.messages WHERE idempotency_key = ANY(%s)",
            ([p.key for p in plans],),
        )
    }  # fmt: skip
    wanted, seen = [], set()
    for plan in plans:
        client = clients.get(plan.client_id)
        slot = plan.slot
        if client is None or slot in taken or slot in seen:
            continue
        if client["opted_out"] and plan.purpose != OPT_OUT_CONFIRMATION:
            continue
        if plan.key in done or _channel(plan, client) is None:
            continue
        seen.add(slot)
        wanted.append(plan)
    return wanted, clients


def _client_rows(conn: psycopg.Connection, ids: Sequence[UUID]) -> dict[UUID, dict]:
    """What drafting needs to know of each client: name, contacts, trainer, opt-out, zone."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT c.id, c.location_id, c.ghl_contact_id, c.name, c.email, c.phone,
                      c.trainer_id, t.name AS trainer_name,
                      c.opted_out_at IS NOT NULL OR coalesce(g.dnd, false) AS opted_out,
                      coalesce(c.timezone, l.timezone) AS timezone
               FROM app.clients c
               JOIN app.locations l ON l.location_id = c.location_id
               LEFT JOIN app.trainers t ON t.id = c.trainer_id
               LEFT JOIN raw.ghl_contacts g
                      ON g.location_id = c.location_id AND g.contact_id = c.ghl_contact_id
               WHERE c.id = ANY(%s)""",
            (list(ids),),
        ).fetchall()
    return {row["id"]: row for row in rows}


def _request(plan: DraftPlan, client: dict, voice: StudioVoice) -> DraftRequest:
    return DraftRequest(
        purpose=plan.purpose,  # type: ignore[arg-type]
        channel=_channel(plan, client),  # type: ignore[arg-type]
        client_first_name=_first_name(client["name"]),
        trainer_name=client["trainer_name"],
        voice=voice,
        facts={"trainer": client["trainer_name"] or voice.studio_name, **plan.facts},
        thread=plan.thread,
        correlation_id=plan.correlation_id,
    )


def _avoiding(request: DraftRequest, verdict: Verdict) -> DraftRequest:
    return replace(request, avoid=tuple(verdict.failed))


def _draft_all(drafter: Drafter, requests: list[DraftRequest]) -> list[DraftResult]:
    if isinstance(drafter, OpenAIDrafter):
        return drafter.draft_many(requests)
    return [drafter.draft(r) for r in requests]


def _names_by_book(
    conn: psycopg.Connection, plans: Sequence[DraftPlan], clients: dict[UUID, dict]
) -> dict[tuple[str, UUID | None], list[tuple[UUID, str]]]:
    """Per studio and trainer, the clients' names: the people a draft could wrongly name."""
    books = {(p.location_id, clients[p.client_id]["trainer_id"]) for p in plans}
    names: dict[tuple[str, UUID | None], list[tuple[UUID, str]]] = defaultdict(list)
    for location_id, trainer_id, client_id, name in conn.execute(
        """SELECT location_id, trainer_id, id, name FROM app.clients
           WHERE (location_id, trainer_id) IN (SELECT * FROM unnest(%s::text[], %s::uuid[]))
              OR (location_id = ANY(%s) AND trainer_id IS NULL)""",
        ([b[0] for b in books], [b[1] for b in books], [b[0] for b in books if b[1] is None]),
    ):
        names[(location_id, trainer_id)].append((client_id, name))
    return names


def _contexts(
    conn: psycopg.Connection, plans: Sequence[DraftPlan], clients: dict[UUID, dict]
) -> list[SafetyContext]:
    """Each plan's safety context: its studio's link domains, the names it must not say."""
    names = _names_by_book(conn, plans, clients)
    domains = _link_domains(conn, {p.location_id for p in plans})
    return [_safety(p, clients[p.client_id], names, domains[p.location_id]) for p in plans]


def _safety(
    plan: DraftPlan,
    client: dict,
    names: dict[tuple[str, UUID | None], list[tuple[UUID, str]]],
    studio_domains: tuple[str, ...],
) -> SafetyContext:
    book = names.get((plan.location_id, client["trainer_id"]), [])
    return SafetyContext(
        channel=_channel(plan, client),  # type: ignore[arg-type]
        purpose=plan.purpose,
        client_first_name=_first_name(client["name"]),
        allowed_link_domains=(*get_settings().allowed_link_domains, *studio_domains),
        other_names=tuple(name for other, name in book if other != plan.client_id),
    )


def _store(
    conn: psycopg.Connection,
    plan: DraftPlan,
    request: DraftRequest,
    result: DraftResult,
    verdict: Verdict,
    client: dict,
) -> UUID | None:
    row = conn.execute(
        """INSERT INTO app.messages (location_id, client_id, trainer_id, direction, channel,
               status, subject, body, draft_body, generator, purpose, safety, insight_id,
               trigger, draft_facts, idempotency_key, scheduled_for, correlation_id)
           VALUES (%s, %s, %s, 'outbound', %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                   coalesce(%s, gen_random_uuid()))
           ON CONFLICT DO NOTHING RETURNING id""",
        (
            plan.location_id, plan.client_id, client["trainer_id"], request.channel,
            "pending_approval" if _ready(result, verdict) else "needs_manual", result.subject,
            result.text, result.text, result.generator, plan.purpose,
            Jsonb(_safety_record(result, verdict)), plan.insight_id, Jsonb(plan.trigger),
            Jsonb(plan.facts), plan.key, plan.scheduled_for, plan.correlation_id,
        ),
    ).fetchone()  # fmt: skip
    return row[0] if row else None


def _safety_record(result: DraftResult, verdict: Verdict) -> dict[str, Any]:
    """The verdict as stored on the message (`safety`), shown to the trainer."""
    return {"ok": verdict.ok, "failed": list(verdict.failed), "details": verdict.details,
            "sms_segments": verdict.sms_segments, "escalate": result.escalate}  # fmt: skip


def _telemetry(result: DraftResult, verdict: Verdict) -> dict[str, Any]:
    return {
        "generator": result.generator,
        "model": result.model,
        "template": result.template,
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "cost_estimate_usd": result.cost_estimate_usd,
        "latency_ms": round(result.latency_ms, 1),
        "outcome": result.outcome,
        "safety_failed": list(verdict.failed),
        "prompt": result.prompt_redacted,
        "output": result.output_redacted,
    }


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


# --- the inbox: a trainer's edit checked, a draft regenerated ---------------------------------


class CannotRedraft(Exception):
    """Why a stored draft cannot be drafted again (shown to the trainer)."""


@dataclass(frozen=True)
class Redraft:
    result: DraftResult
    verdict: Verdict
    status: str  # pending_approval, or needs_manual when it still fails a rule


def check_text(conn: psycopg.Connection, message_id: UUID, text: str) -> Verdict:
    """The safety rules on a trainer's edit, in the context the draft was made for: an edit
    is held to the same rules as a draft (the studio's link domains, other clients' names)."""
    plan, client, _ = _stored(conn, message_id)
    return validate_draft(text, _contexts(conn, [plan], {plan.client_id: client})[0])


def redraft(
    conn: psycopg.Connection,
    message_id: UUID,
    instruction: str,
    drafter: Drafter,
    *,
    now: datetime,
) -> Redraft | None:
    """Draft the message again as the trainer asks ("shorter", "warmer", free text), from
    the facts it was first written from and the thread as it is now, validated like every
    draft; the new text replaces the draft. None when the drafter cannot follow the
    instruction (templates only restyle): the draft is left as it was."""
    plan, client, previous = _stored(conn, message_id)
    if not plan.facts:
        raise CannotRedraft("This draft was made before regeneration existed: edit it instead.")
    if plan.purpose == "reply":
        plan = replace(plan, thread=_thread(conn, plan.location_id, client["ghl_contact_id"]))
    voice = _voices(conn, {plan.location_id})[plan.location_id]
    request = replace(_request(plan, client, voice), instruction=instruction, previous=previous)
    context = _contexts(conn, [plan], {plan.client_id: client})
    [result], [verdict] = _draft_checked(drafter, [request], context)
    if result.outcome == "instruction_unsupported":
        return None
    status = "pending_approval" if _ready(result, verdict) else "needs_manual"
    conn.execute(
        """UPDATE app.messages SET body = %s, draft_body = %s, subject = %s, generator = %s,
               safety = %s, status = %s, updated_at = %s
           WHERE id = %s""",
        (result.text, result.text, result.subject, result.generator,
         Jsonb(_safety_record(result, verdict)), status, now, message_id),
    )  # fmt: skip
    telemetry = {**_telemetry(result, verdict), "instruction": instruction}
    _agent_event(conn, plan.location_id, plan.client_id, message_id, plan.correlation_id,
                 "regenerate", telemetry)  # fmt: skip
    return Redraft(result, verdict, status)


def _stored(conn: psycopg.Connection, message_id: UUID) -> tuple[DraftPlan, dict, str]:
    """A stored draft as the plan it was made from, its client, and its current text."""
    with conn.cursor(row_factory=dict_row) as cur:
        row = cur.execute(
            """SELECT purpose, location_id, client_id, idempotency_key, draft_facts, trigger,
                      correlation_id, channel, scheduled_for, insight_id, body
               FROM app.messages WHERE id = %s AND direction = 'outbound'""",
            (message_id,),
        ).fetchone()
    if row is None:
        raise CannotRedraft("This draft is not in your inbox.")
    plan = DraftPlan(
        purpose=row["purpose"], location_id=row["location_id"], client_id=row["client_id"],
        key=row["idempotency_key"], facts=row["draft_facts"], trigger=row["trigger"],
        correlation_id=row["correlation_id"], channel=row["channel"],
        scheduled_for=row["scheduled_for"], insight_id=row["insight_id"],
    )  # fmt: skip
    client = _client_rows(conn, [plan.client_id]).get(plan.client_id)
    if client is None:
        raise CannotRedraft("This draft's client is not one of yours.")
    return plan, client, row["body"]


# --- reading what drafts need ----------------------------------------------------------------


def _clients(conn: psycopg.Connection, location_id: str, contact_ids: set[str]) -> dict[str, dict]:
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute(
            """SELECT c.id, c.ghl_contact_id, c.trainer_id,
                      coalesce(c.timezone, l.timezone) AS timezone
               FROM app.clients c JOIN app.locations l USING (location_id)
               WHERE c.location_id = %s AND c.ghl_contact_id = ANY(%s)""",
            (location_id, list(contact_ids)),
        ).fetchall()
    return {row["ghl_contact_id"]: row for row in rows}


def _appointment(
    conn: psycopg.Connection, location_id: str, appointment_id: str | None
) -> dict | None:
    if appointment_id is None:
        return None
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(
            """SELECT contact_id, start_time, status FROM raw.ghl_appointments
               WHERE location_id = %s AND appointment_id = %s AND start_time IS NOT NULL""",
            (location_id, appointment_id),
        ).fetchone()


def _thread(
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


def _voices(conn: psycopg.Connection, location_ids: set[str]) -> dict[str, StudioVoice]:
    """Each studio's voice as its owner set it (`app.locations.draft_voice`)."""
    rows = conn.execute(
        "SELECT location_id, name, draft_voice FROM app.locations WHERE location_id = ANY(%s)",
        (list(location_ids),),
    ).fetchall()
    return {location_id: studio_voice(name, voice) for location_id, name, voice in rows}


def _link_domains(conn: psycopg.Connection, location_ids: set[str]) -> dict[str, tuple[str, ...]]:
    """The link domains each studio's owner allows in drafts (beside the install's own)."""
    rows = conn.execute(
        "SELECT location_id, allowed_link_domains FROM app.locations WHERE location_id = ANY(%s)",
        (list(location_ids),),
    ).fetchall()
    return {location_id: tuple(domains) for location_id, domains in rows}


def studio_voice(name: str, settings: dict[str, Any]) -> StudioVoice:
    """A studio's voice from its stored settings; what the owner left unset keeps the default."""
    chosen = {k: settings[k] for k in ("tone", "sign_off") if isinstance(settings.get(k), str)}
    templates = settings.get("templates")
    if isinstance(templates, dict):
        chosen["templates"] = {k: v for k, v in templates.items() if isinstance(v, str)}
    return StudioVoice(studio_name=name, **chosen)


def _session_facts(client: dict, appointment: dict) -> dict[str, str]:
    return {
        "session_when": session_when(appointment["start_time"], zone_or_utc(client["timezone"]))
    }


def session_when(start: datetime, zone: ZoneInfo) -> str:
    """ "Tue 3 Dec at 6:30 pm", in the client's own time."""
    local = start.astimezone(zone)
    clock = f"{local.hour % 12 or 12}" + (f":{local.minute:02d}" if local.minute else "")
    return f"{local:%a} {local.day} {local:%b} at {clock} {'am' if local.hour < 12 else 'pm'}"


def _channel(plan: DraftPlan, client: dict) -> str | None:
    if plan.channel:
        return plan.channel
    if client["phone"]:
        return "SMS"
    return "Email" if client["email"] else None


def _sendable_channel(message_type: str | None) -> str | None:
    """Reply where the client wrote, if TrainU can send there (SMS or Email)."""
    return message_type if message_type in ("SMS", "Email") else None


def _first_name(name: str) -> str:
    return name.split()[0] if name and name.strip() else "there"
