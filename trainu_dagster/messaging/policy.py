"""Whether an approved message may go out now: the rules re-checked at the moment of sending.

The outbox gathers the facts under its claim (`SendFacts`: opt-outs, the client's recent
messages, whether the trigger still holds) and asks `decide`, which answers one of:
send; hold until a time (outside the client's sending window, or over a frequency cap);
suppress for good with a reason (opted out, trigger gone); or stale (the approval is too
old: back to the inbox). Pure functions only, so every rule is tested on its own,
including the days the clocks change.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# Messages about a session the client booked, or an answer to the client's own message:
# they have their own allowance instead of the marketing caps (`SendRules`).
SERVICE_PURPOSES = ("confirmation", "reminder", "reply", "opt_out_confirmation")
# The one message an opt-out allows: that it took effect (TrainU's own, for a STOP-family
# reply GHL did not act on; GHL confirms its own STOP keywords).
OPT_OUT_CONFIRMATION = "opt_out_confirmation"
# What a new booking makes moot: the client is coming back already.
MOOT_WHEN_REBOOKED = ("no_show_checkin", "reschedule_offer", "re_engagement")
DAY, WEEK = timedelta(hours=24), timedelta(days=7)


@dataclass(frozen=True)
class SendRules:
    """A studio's rules (its settings); the window is the client's local time."""

    window_start: time = time(8)
    window_end: time = time(21)
    max_per_day: int = 1
    max_per_week: int = 3
    service_per_day: int = 3  # confirmations, reminders, replies: their own allowance
    over_cap: Literal["hold", "suppress"] = "hold"
    approval_expiry: timedelta = timedelta(hours=48)


@dataclass(frozen=True)
class SendFacts:
    purpose: str
    approved_at: datetime
    zone: ZoneInfo  # the client's, else the studio's
    opted_out: str | None = None  # why, if the client may not be written to on this channel
    confirms_opt_out: bool = False  # the single confirmation the client's opt-out allows
    trigger_gone: str | None = None  # why the reason for the message no longer holds
    # outbound messages to this client in the last 7 days (ours and those sent from GHL),
    # each with whether it was a service message
    recent: Sequence[tuple[datetime, bool]] = ()


@dataclass(frozen=True)
class Decision:
    action: Literal["send", "hold", "suppress", "stale"]
    reason: str | None = None
    until: datetime | None = None  # for hold: when to look again


SEND = Decision("send")


def decide(facts: SendFacts, rules: SendRules, now: datetime) -> Decision:
    """The first rule that stops the message, else send. Order matters: an opted-out
    client is never merely held, and a stale approval is not sent after a long hold."""
    if facts.purpose == OPT_OUT_CONFIRMATION and not facts.confirms_opt_out:
        return Decision("suppress", "opt-out confirmation not due (already sent, or GHL's own)")
    if facts.opted_out and not facts.confirms_opt_out:
        return Decision("suppress", facts.opted_out)
    if facts.trigger_gone:
        return Decision("suppress", facts.trigger_gone)
    if now - facts.approved_at > rules.approval_expiry:
        return Decision("stale", "approval expired")
    capped = cap_clears_at(facts, rules, now)
    if capped is not None:
        if rules.over_cap == "suppress":
            return Decision("suppress", "frequency cap")
        return _hold(capped, "frequency cap", facts.zone, rules)
    opens = window_opens_at(now, facts.zone, rules.window_start, rules.window_end)
    if opens is not None:
        return Decision("hold", "quiet hours", opens)
    return SEND


def _hold(until: datetime, reason: str, zone: ZoneInfo, rules: SendRules) -> Decision:
    """Hold until `until`, or until the window opens after it if that falls in quiet hours."""
    opens = window_opens_at(until, zone, rules.window_start, rules.window_end)
    return Decision("hold", reason, opens or until)


def window_opens_at(now: datetime, zone: ZoneInfo, start: time, end: time) -> datetime | None:
    """None inside the daily sending window [start, end) of local time `zone`, else the
    instant it next opens (start on the same local day or the next), correct across DST."""
    local = now.astimezone(zone)
    if start <= local.time() < end:
        return None
    day = local.date() if local.time() < start else local.date() + timedelta(days=1)
    return local_instant(day, start, zone)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """`at` o'clock on `day` in `zone`, in UTC. A wall time repeated when the clocks go back
    is its first occurrence; one skipped when they go forward falls just after the gap."""
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def cap_clears_at(facts: SendFacts, rules: SendRules, now: datetime) -> datetime | None:
    """None if the message fits its allowance, else when it next would: once the oldest
    message keeping it over the cap leaves the window. A marketing message counts every
    message the client got (ours and GHL's); a service message, only service messages."""
    service = facts.purpose in SERVICE_PURPOSES
    caps = [(DAY, rules.service_per_day)] if service else [
        (DAY, rules.max_per_day), (WEEK, rules.max_per_week),
    ]  # fmt: skip
    clears = []
    for span, cap in caps:
        counted = sorted(at for at, was_service in facts.recent
                         if at > now - span and (was_service or not service))  # fmt: skip
        if len(counted) >= cap:
            # one more fits once all but cap - 1 of them have aged out (cap 0: look tomorrow)
            clears.append(counted[len(counted) - cap] + span if cap else now + span)
    return max(clears) if clears else None


def zone_or_utc(name: str | None) -> ZoneInfo:
    """A client's or studio's IANA zone; UTC when unset or unknown."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")
