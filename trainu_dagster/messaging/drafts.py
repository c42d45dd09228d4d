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

This module runs the flow; `drafts_rules` decides (pure functions) and `drafts_store`
holds every statement.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from uuid import UUID

import psycopg

from trainu_dagster.ghl.opt_out import is_carrier_keyword
from trainu_dagster.ghl.payloads import ParsedEvent
from trainu_dagster.ingest.clients import ensure_clients
from trainu_dagster.ingest.process import WebhookEvent
from trainu_dagster.messaging import drafts_rules, drafts_store
from trainu_dagster.messaging.classify import classify_inbound
from trainu_dagster.messaging.drafting import (
    DraftRequest,
    DraftResult,
    OpenAIDrafter,
    TemplateDrafter,
)
from trainu_dagster.messaging.drafts_rules import Client, DraftPlan, DraftStatus
from trainu_dagster.messaging.policy import MOOT_WHEN_REBOOKED
from trainu_dagster.messaging.safety import SafetyContext, Verdict, validate_draft
from trainu_dagster.messaging.triggers import Happening, happenings
from trainu_dagster.settings import get_settings

Drafter = TemplateDrafter | OpenAIDrafter


@dataclass
class Outcome:
    """What drafting did: drafts made (ready, or needing a trainer's hand), escalations,
    drafts withdrawn, and plans skipped."""

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
        clients = drafts_store.clients_of_contacts(conn, location_id, {h.contact_id for h in found})
        for happening in found:
            client = clients.get(happening.contact_id)
            if client is None:  # a contact GHL has not told us about yet: nothing to say
                continue
            plans.extend(_react_to(conn, happening, client, outcome, now))
    make_drafts(conn, plans, drafter, now=now, outcome=outcome)
    return outcome


def _react_to(
    conn: psycopg.Connection, h: Happening, client: Client, outcome: Outcome, now: datetime
) -> list[DraftPlan]:
    if h.kind == "opted_out":
        outcome.withdrawn += drafts_store.opt_out(
            conn, h.location_id, h.contact_id, client.id, "GHL DND"
        )
        return []
    if h.kind == "inbound":
        return _inbound(conn, h, client, outcome)
    booking = drafts_store.booking(conn, h.location_id, h.appointment_id)
    if booking is None or booking.contact_id != h.contact_id:
        return []
    if h.kind in ("cancelled", "deleted"):
        reason = "booking cancelled" if h.kind == "cancelled" else "booking deleted"
        outcome.withdrawn += drafts_store.withdraw(
            conn, client.id, reason, appointment=h.appointment_id
        )
        if h.kind == "cancelled" and drafts_rules.late_cancel(booking, h.at or now, now):
            return [drafts_rules.booking_plan("reschedule_offer", client, h, booking)]
        return []
    if h.kind == "no_show":
        if drafts_rules.check_in_due(booking, now):
            return [drafts_rules.booking_plan("no_show_checkin", client, h, booking)]
        return []
    # booked, or updated: a booking in the future is news worth confirming once per time
    if not drafts_rules.worth_confirming(booking, now):
        return []
    moved = drafts_store.withdraw(conn, client.id, "booking moved", appointment=h.appointment_id,
                                  unless_start=booking.start_time)  # fmt: skip
    outcome.withdrawn += moved
    if h.kind == "booked":
        outcome.withdrawn += drafts_store.withdraw(
            conn, client.id, "client rebooked", purposes=MOOT_WHEN_REBOOKED
        )
    if h.kind == "booked" or moved:
        return [drafts_rules.booking_plan("confirmation", client, h, booking)]
    return []


def _inbound(
    conn: psycopg.Connection, h: Happening, client: Client, outcome: Outcome
) -> list[DraftPlan]:
    verdict = classify_inbound(h.text or "")
    if verdict.opt_out:
        outcome.withdrawn += drafts_store.opt_out(
            conn, h.location_id, h.contact_id, client.id, "STOP reply"
        )
        if is_carrier_keyword(h.text or ""):
            return []  # GHL acts on its STOP keywords and confirms them itself
        return [drafts_rules.opt_out_confirmation_plan(h, client.id)]
    if verdict.escalation is not None:
        item = drafts_store.escalate(conn, drafts_rules.escalation(h, client, verdict.escalation))
        if item is not None:
            outcome.escalated.append(item)
        return []
    if verdict.intent not in drafts_rules.ANSWERED:
        return []
    thread = drafts_store.thread(conn, h.location_id, h.contact_id)
    return [drafts_rules.reply_plan(h, client.id, verdict.intent, thread)]


# --- the drafts asset: state triggers ------------------------------------------------------


def plan_state_drafts(conn: psycopg.Connection, *, now: datetime) -> list[DraftPlan]:
    """Reminders for tomorrow's sessions, re-engagement for today's newly high risks,
    congratulations for milestones: whatever the state of the data says is due now."""
    plans: list[DraftPlan | None] = []
    plans += [
        drafts_rules.reminder_plan(s, now) for s in drafts_store.sessions_ahead(conn, now=now)
    ]
    plans += map(drafts_rules.re_engagement_plan, drafts_store.risks_raised_today(conn, now=now))
    plans += map(drafts_rules.milestone_plan, drafts_store.milestones_reached(conn))
    return [plan for plan in plans if plan is not None]


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
    ids = list({p.client_id for p in plans})
    clients = drafts_store.clients(conn, ids)
    # checked before drafting, so no model call is wasted
    wanted = drafts_rules.wanted(
        plans, clients, drafts_store.open_slots(conn, ids),
        drafts_store.drafted_keys(conn, [p.key for p in plans]),
    )  # fmt: skip
    outcome.skipped += len(plans) - len(wanted)
    if not wanted:
        return outcome
    voices = drafts_store.voices(conn, {p.location_id for p in wanted})
    requests = [
        drafts_rules.request(p, clients[p.client_id], voices[p.location_id]) for p in wanted
    ]
    results, verdicts = _draft_checked(drafter, requests, _contexts(conn, wanted, clients))
    with conn.pipeline():  # the agent events go without waiting; only RETURNINGs wait
        for plan, request, result, verdict in zip(wanted, requests, results, verdicts, strict=True):
            status = drafts_rules.draft_status(result, verdict)
            message_id = drafts_store.insert_draft(
                conn, plan, request, result, verdict, clients[plan.client_id], status
            )
            if message_id is None:  # another run made it meanwhile
                outcome.skipped += 1
                continue
            ready = status == "pending_approval"
            (outcome.created if ready else outcome.needs_manual).append(message_id)
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
        again = _draft_all(
            drafter, [drafts_rules.avoiding(requests[i], verdicts[i]) for i in retry]
        )
        for i, result in zip(retry, again, strict=True):
            results[i], verdicts[i] = result, validate_draft(result.text, contexts[i])
    return results, verdicts


def _draft_all(drafter: Drafter, requests: list[DraftRequest]) -> list[DraftResult]:
    if isinstance(drafter, OpenAIDrafter):
        return drafter.draft_many(requests)
    return [drafter.draft(r) for r in requests]


def _contexts(
    conn: psycopg.Connection, plans: Sequence[DraftPlan], clients: dict[UUID, Client]
) -> list[SafetyContext]:
    """Each plan's safety context: its studio's link domains, the names it must not say."""
    names = drafts_store.names_by_book(conn, plans, clients)
    domains = drafts_store.link_domains(conn, {p.location_id for p in plans})
    install = get_settings().allowed_link_domains
    return [
        drafts_rules.safety_context(p, clients[p.client_id], names, domains[p.location_id], install)
        for p in plans
    ]


# --- the inbox: a trainer's edit checked, a draft regenerated ---------------------------------


class CannotRedraft(Exception):
    """Why a stored draft cannot be drafted again (shown to the trainer)."""


@dataclass(frozen=True)
class Redraft:
    result: DraftResult
    verdict: Verdict
    status: DraftStatus  # pending_approval, or needs_manual when it still fails a rule


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
        plan = replace(
            plan, thread=drafts_store.thread(conn, plan.location_id, client.ghl_contact_id)
        )
    voice = drafts_store.voices(conn, {plan.location_id})[plan.location_id]
    request = replace(
        drafts_rules.request(plan, client, voice), instruction=instruction, previous=previous
    )
    context = _contexts(conn, [plan], {plan.client_id: client})
    [result], [verdict] = _draft_checked(drafter, [request], context)
    if result.outcome == "instruction_unsupported":
        return None
    status = drafts_rules.draft_status(result, verdict)
    drafts_store.replace_draft(conn, message_id, plan, result, verdict, status=status,
                               instruction=instruction, now=now)  # fmt: skip
    return Redraft(result, verdict, status)


def _stored(conn: psycopg.Connection, message_id: UUID) -> tuple[DraftPlan, Client, str]:
    """A stored draft as the plan it was made from, its client, and its current text."""
    stored = drafts_store.stored_draft(conn, message_id)
    if stored is None:
        raise CannotRedraft("This draft is not in your inbox.")
    plan, text = stored
    client = drafts_store.clients(conn, [plan.client_id]).get(plan.client_id)
    if client is None:
        raise CannotRedraft("This draft's client is not one of yours.")
    return plan, client, text
