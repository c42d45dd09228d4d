"""What to draft, for whom and why: drafting's decisions, pure, so each is tested on its own.

`drafts` runs the flow and `drafts_store` reads and writes; the answers in between are here:
- what a happening calls for: a cancellation at short notice → a reschedule offer
  (`late_cancel`), a no-show today → a check-in (`check_in_due`), a booking ahead → a
  confirmation (`worth_confirming`), a client's question → a reply, a STOP → the one
  confirmation it allows, a message for a person → an escalation;
- each draft's plan (`DraftPlan`): its purpose, the facts its text is written from, and an
  idempotency key named for its trigger; the state triggers' plans: a reminder the day
  before the client's session at 9:00 their time, re-engagement, a goal milestone;
- which plans are still wanted (`wanted`): one open draft per slot, none for an opted-out
  client (bar their one confirmation), none with nowhere to send, none twice per trigger;
- what the drafter is asked (`request`) and what the draft is checked against
  (`safety_context`), and whether it is ready for a trainer or needs their hand
  (`draft_status`).
Nothing here reads the database or calls a model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Literal, get_args
from uuid import UUID
from zoneinfo import ZoneInfo

from trainu_dagster.messaging.classify import CRISIS_GUIDANCE
from trainu_dagster.messaging.drafting import (
    Channel,
    DraftRequest,
    DraftResult,
    Purpose,
    StudioVoice,
    ThreadMessage,
)
from trainu_dagster.messaging.policy import OPT_OUT_CONFIRMATION, zone_or_utc
from trainu_dagster.messaging.safety import SafetyContext, Verdict
from trainu_dagster.messaging.triggers import Happening

LATE_CANCEL = timedelta(hours=24)  # as the bookings mart's default late_cancel_hours
CHECK_IN_WITHIN = timedelta(hours=24)  # a no-show older than this gets no "same-day" check-in
REMINDER_AT = time(9, 0)  # the day before the session, client's local time
MILESTONES = ((100, "reached your goal"), (50, "made it halfway to your goal"))
ANSWERED = ("question", "reschedule")  # what a client's message asks that gets a reply drafted
DraftStatus = Literal["pending_approval", "needs_manual"]
Slot = tuple[UUID, str, str]  # client, purpose, booking ("" for a draft about none)


@dataclass(frozen=True)
class Client:
    """A client as drafting sees them: who, how to reach them, whose client, whether they
    may be written to (opted out in TrainU or DND in GHL), and their zone."""

    id: UUID
    location_id: str
    ghl_contact_id: str
    name: str
    email: str | None
    phone: str | None
    trainer_id: UUID | None
    trainer_name: str | None
    opted_out: bool
    timezone: str | None  # the client's, else the studio's


@dataclass(frozen=True)
class Booking:
    """A booking as GHL holds it now."""

    contact_id: str | None
    start_time: datetime
    status: str | None


@dataclass(frozen=True)
class DraftPlan:
    """A draft to make: for whom, why (its trigger) and with which facts."""

    purpose: str  # a `drafting.Purpose` (any text on a message stored before purposes)
    location_id: str
    client_id: UUID
    key: str  # the idempotency key: one draft per trigger, however often it is seen
    facts: dict[str, str]
    trigger: dict[str, Any]
    correlation_id: UUID | None = None
    channel: Channel | None = None  # None: SMS if the client has a phone, else Email
    scheduled_for: datetime | None = None
    insight_id: UUID | None = None
    thread: tuple[ThreadMessage, ...] = ()

    @property
    def slot(self) -> Slot:
        """Where at most one draft may be open (the database's unique index says the same):
        per client and purpose, and per booking for a draft about one, so a client who books
        Monday and Thursday at once has both sessions confirmed."""
        return self.client_id, self.purpose, self.trigger.get("appointment_id") or ""


@dataclass(frozen=True)
class Escalation:
    """A client's message the owner handles (injury, illness, billing...), never a draft."""

    location_id: str
    client_id: UUID
    trainer_id: UUID | None
    channel: Channel
    text: str
    category: str
    trigger: dict[str, Any]
    key: str
    correlation_id: UUID


# --- what a happening calls for -------------------------------------------------------------


def late_cancel(booking: Booking, cancelled_at: datetime, now: datetime) -> bool:
    """A cancellation within `LATE_CANCEL` of a session not long past: worth an offer of
    another time."""
    start = booking.start_time
    return start - cancelled_at < LATE_CANCEL and start > now - LATE_CANCEL


def check_in_due(booking: Booking, now: datetime) -> bool:
    """A no-show recent enough for a same-day check-in."""
    return now - booking.start_time <= CHECK_IN_WITHIN


def worth_confirming(booking: Booking, now: datetime) -> bool:
    """A booking still ahead and still on: news worth confirming (once per start time)."""
    return booking.start_time > now and booking.status in ("new", "confirmed")


def booking_plan(purpose: Purpose, client: Client, h: Happening, booking: Booking) -> DraftPlan:
    """A draft about the booking a happening concerns (confirmation, check-in, offer)."""
    start = booking.start_time
    return DraftPlan(
        purpose=purpose,
        location_id=h.location_id,
        client_id=client.id,
        key=f"{purpose}:{h.location_id}:{h.appointment_id}:{start.isoformat()}",
        facts={"session_when": session_when(start, zone_or_utc(client.timezone))},
        trigger={
            "event": h.kind,
            "appointment_id": h.appointment_id,
            "start_time": start.isoformat(),
            "webhook_event_id": h.webhook_event_id,
        },  # fmt: skip
        correlation_id=h.correlation_id,
    )


def opt_out_confirmation_plan(h: Happening, client_id: UUID) -> DraftPlan:
    """The one message a STOP-family reply GHL does not act on allows: that it took effect."""
    return DraftPlan(
        purpose=OPT_OUT_CONFIRMATION, location_id=h.location_id, client_id=client_id,
        key=f"{OPT_OUT_CONFIRMATION}:{h.location_id}:{h.message_id}", facts={},
        trigger={"event": "inbound_message", "message_id": h.message_id,
                 "webhook_event_id": h.webhook_event_id, "intent": "opt_out"},
        correlation_id=h.correlation_id, channel=sendable_channel(h.channel),
    )  # fmt: skip


def reply_plan(
    h: Happening, client_id: UUID, intent: str, thread: tuple[ThreadMessage, ...]
) -> DraftPlan:
    """A suggested answer to the client's message, written with the thread as context."""
    return DraftPlan(
        purpose="reply",
        location_id=h.location_id,
        client_id=client_id,
        key=f"reply:{h.location_id}:{h.message_id}",
        facts={"question": h.text or ""},
        trigger={
            "event": "inbound_message",
            "message_id": h.message_id,
            "webhook_event_id": h.webhook_event_id,
            "intent": intent,
        },  # fmt: skip
        correlation_id=h.correlation_id,
        channel=sendable_channel(h.channel),
        thread=thread,
    )


def escalation(h: Happening, client: Client, category: str) -> Escalation:
    """The owner's item for a client's message; for self-harm, with the crisis guidance."""
    trigger = {"event": "inbound_message", "message_id": h.message_id, "category": category,
               "webhook_event_id": h.webhook_event_id}  # fmt: skip
    if category == "self_harm":
        trigger["guidance"] = CRISIS_GUIDANCE
    return Escalation(
        location_id=h.location_id, client_id=client.id, trainer_id=client.trainer_id,
        channel=sendable_channel(h.channel) or "SMS", text=h.text or "", category=category,
        trigger=trigger, key=f"escalation:{h.location_id}:{h.message_id}",
        correlation_id=h.correlation_id,
    )  # fmt: skip


# --- what the state of the data calls for ---------------------------------------------------


@dataclass(frozen=True)
class SessionAhead:
    """A booked session within the next two days (a reminder may be due)."""

    client_id: UUID
    location_id: str
    appointment_id: str
    start_time: datetime
    timezone: str | None


@dataclass(frozen=True)
class RaisedRisk:
    """A client whose risk was raised to high today (it was not high before)."""

    insight_id: UUID
    client_id: UUID
    location_id: str
    reason: str
    features: dict[str, Any]


@dataclass(frozen=True)
class GoalProgress:
    """An active or achieved goal at least halfway done."""

    goal_id: UUID
    client_id: UUID
    location_id: str
    title: str
    percent_complete: Decimal


def reminder_plan(session: SessionAhead, now: datetime) -> DraftPlan | None:
    """A reminder of a session on the client's tomorrow, scheduled for `REMINDER_AT` the
    day before in their time (at once if that has passed); None for any other day."""
    zone = zone_or_utc(session.timezone)
    local = session.start_time.astimezone(zone)
    if local.date() != (now.astimezone(zone) + timedelta(days=1)).date():
        return None  # only the sessions of the client's tomorrow
    at = datetime.combine(local.date() - timedelta(days=1), REMINDER_AT, zone)
    return DraftPlan(
        purpose="reminder",
        location_id=session.location_id,
        client_id=session.client_id,
        key=f"reminder:{session.location_id}:{session.appointment_id}:"
        f"{session.start_time.isoformat()}",
        facts={"session_when": session_when(session.start_time, zone)},
        trigger={
            "event": "session_tomorrow",
            "appointment_id": session.appointment_id,
            "start_time": session.start_time.isoformat(),
        },  # fmt: skip
        scheduled_for=max(at.astimezone(UTC), now),
    )


def re_engagement_plan(risk: RaisedRisk) -> DraftPlan:
    """An invitation back, for a client whose risk was raised to high today."""
    days = risk.features.get("days_since_last_attended")
    return DraftPlan(
        purpose="re_engagement",
        location_id=risk.location_id,
        client_id=risk.client_id,
        key=f"re_engagement:{risk.insight_id}",
        facts={
            "reason": risk.reason,
            "days_since_visit": str(int(days)) if days is not None else "",
        },  # fmt: skip
        trigger={"event": "risk_high", "insight_id": str(risk.insight_id)},
        insight_id=risk.insight_id,
    )


def milestone_plan(goal: GoalProgress) -> DraftPlan:
    """Congratulations on the highest milestone the goal has reached (halfway, done)."""
    level, achievement = next(m for m in MILESTONES if goal.percent_complete >= m[0])
    return DraftPlan(
        purpose="milestone",
        location_id=goal.location_id,
        client_id=goal.client_id,
        key=f"milestone:{goal.goal_id}:{level}",
        facts={"goal_title": goal.title, "achievement": achievement},
        trigger={"event": "goal_milestone", "goal_id": str(goal.goal_id), "percent": level},
    )


# --- which plans are drafted ----------------------------------------------------------------


def wanted(
    plans: Sequence[DraftPlan], clients: Mapping[UUID, Client], taken: set[Slot], done: set[str]
) -> list[DraftPlan]:
    """Plans whose client may be written to, with no open draft in their slot (`taken`, nor
    an earlier plan's) and no draft for that trigger yet (`done`: idempotency keys)."""
    found: list[DraftPlan] = []
    seen: set[Slot] = set()
    for plan in plans:
        client = clients.get(plan.client_id)
        slot = plan.slot
        if client is None or slot in taken or slot in seen:
            continue
        if client.opted_out and plan.purpose != OPT_OUT_CONFIRMATION:
            continue
        if plan.key in done or channel(plan, client) is None:
            continue
        seen.add(slot)
        found.append(plan)
    return found


def channel(plan: DraftPlan, client: Client) -> Channel | None:
    """Where the draft goes: the plan's channel, else SMS if the client has a phone, else
    Email if they have an address; None: nowhere."""
    if plan.channel:
        return plan.channel
    if client.phone:
        return "SMS"
    return "Email" if client.email else None


def sendable_channel(message_type: str | None) -> Channel | None:
    """Reply where the client wrote, if TrainU can send there (SMS or Email)."""
    if message_type == "SMS":
        return "SMS"
    if message_type == "Email":
        return "Email"
    return None


def _as_purpose(value: str) -> Purpose:
    for purpose in get_args(Purpose):
        if value == purpose:
            known: Purpose = purpose
            return known
    raise ValueError(f"no drafting purpose {value!r}")


def _reachable_on(plan: DraftPlan, client: Client) -> Channel:
    found = channel(plan, client)
    if found is None:  # `wanted` drops such plans; a stored draft always has its channel
        raise ValueError(f"no channel for a {plan.purpose} draft to client {client.id}")
    return found


# --- drafting and checking ------------------------------------------------------------------


def request(plan: DraftPlan, client: Client, voice: StudioVoice) -> DraftRequest:
    """What the drafter is asked: the purpose, the facts, the voice, who speaks."""
    return DraftRequest(
        purpose=_as_purpose(plan.purpose),
        channel=_reachable_on(plan, client),
        client_first_name=first_name(client.name),
        trainer_name=client.trainer_name,
        voice=voice,
        facts={"trainer": client.trainer_name or voice.studio_name, **plan.facts},
        thread=plan.thread,
        correlation_id=plan.correlation_id,
    )


def avoiding(request: DraftRequest, verdict: Verdict) -> DraftRequest:
    """The request again, told which safety rules the last draft failed."""
    return replace(request, avoid=tuple(verdict.failed))


Book = Mapping[tuple[str, UUID | None], Sequence[tuple[UUID, str]]]  # (studio, trainer) → names


def safety_context(
    plan: DraftPlan,
    client: Client,
    names: Book,
    studio_domains: tuple[str, ...],
    install_domains: Sequence[str],
) -> SafetyContext:
    """What the draft is checked against: its channel and purpose, the client's first name,
    the links allowed (the install's and the studio's domains), and the names of the
    trainer's other clients, which it must never say."""
    book = names.get((plan.location_id, client.trainer_id), [])
    return SafetyContext(
        channel=_reachable_on(plan, client),
        purpose=plan.purpose,
        client_first_name=first_name(client.name),
        allowed_link_domains=(*install_domains, *studio_domains),
        other_names=tuple(name for other, name in book if other != plan.client_id),
    )


def draft_status(result: DraftResult, verdict: Verdict) -> DraftStatus:
    """Ready for approval (passed every rule, and the model did not ask for a person), else
    the trainer must write it (`needs_manual`)."""
    return "pending_approval" if verdict.ok and not result.escalate else "needs_manual"


def safety_record(result: DraftResult, verdict: Verdict) -> dict[str, Any]:
    """The verdict as stored on the message (`safety`), shown to the trainer."""
    return {"ok": verdict.ok, "failed": list(verdict.failed), "details": verdict.details,
            "sms_segments": verdict.sms_segments, "escalate": result.escalate}  # fmt: skip


def telemetry(result: DraftResult, verdict: Verdict) -> dict[str, Any]:
    """The agent event of one draft (stored redacted)."""
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


# --- words ----------------------------------------------------------------------------------


def session_when(start: datetime, zone: ZoneInfo) -> str:
    """ "Tue 3 Dec at 6:30 pm", in the client's own time."""
    local = start.astimezone(zone)
    clock = f"{local.hour % 12 or 12}" + (f":{local.minute:02d}" if local.minute else "")
    return f"{local:%a} {local.day} {local:%b} at {clock} {'am' if local.hour < 12 else 'pm'}"


def studio_voice(name: str, settings: Mapping[str, Any]) -> StudioVoice:
    """A studio's voice from its stored settings; what the owner left unset keeps the default."""
    chosen: dict[str, Any] = {
        k: settings[k] for k in ("tone", "sign_off") if isinstance(settings.get(k), str)
    }
    templates = settings.get("templates")
    if isinstance(templates, dict):
        chosen["templates"] = {k: v for k, v in templates.items() if isinstance(v, str)}
    return StudioVoice(studio_name=name, **chosen)


def first_name(name: str) -> str:
    return name.split()[0] if name and name.strip() else "there"
