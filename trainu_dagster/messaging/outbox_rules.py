"""The outbox's own judgements, beside `policy.decide`: pure, so each is tested on its own.

`policy.decide` says whether an approved message may go now. Around it the outbox needs a
few more answers, each here with the reason it gives a person:
- what the facts read under a claim mean: why a client may not be written to on a
  channel (opted out in TrainU, GHL DND everywhere or on that channel), and why the
  trigger of a message no longer holds (its booking cancelled, moved or begun; the client
  rebooked; the client's message answered already);
- when a studio's sending stops on its own: a burst beyond its limit (the burst brake);
- what to do when GHL sent nothing: when to try again, and when to give up;
- which message in the client's GHL conversation is a send whose answer was lost.
Nothing here reads the database or calls GHL: `outbox_store` and `outbox` do.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from trainu_dagster.ghl.payloads import parse_timestamp

BURST_WINDOW = timedelta(minutes=10)  # a studio's sends are counted over this much time
MAX_ATTEMPTS = 8  # claims GHL sent nothing for, before the message fails for good
CLOCK_SKEW = timedelta(minutes=2)  # GHL's clock against ours, when matching a lost send
ABOUT_A_BOOKING = ("confirmation", "reminder")  # purposes whose trigger is one booking


# --- what the facts read under a claim mean ------------------------------------------------


def opt_out_reasons(opted_out: str | None, dnd: bool, dnd_on: Mapping[str, bool]) -> dict[str, str]:
    """Channel → why the client may not be written to there: their opt-out in TrainU (its
    reason), else GHL's DND on every channel, else DND on that channel (`dnd_on`)."""
    found: dict[str, str] = {}
    for channel, on_channel in dnd_on.items():
        why = opted_out or ("GHL DND" if dnd else None)
        why = why or (f"GHL DND on {channel}" if on_channel else None)
        if why:
            found[channel] = why
    return found


@dataclass(frozen=True)
class BookingState:
    """A booking as GHL holds it now (`raw.ghl_appointments`)."""

    status: str | None
    start_time: datetime
    deleted_at: datetime | None


@dataclass(frozen=True)
class TriggerFacts:
    """What tells whether a message's trigger still holds; only what its purpose needs is
    read: the booking a confirmation or reminder is about, whether a client a check-in or
    invitation is for has booked since, whether the client's message was answered."""

    booking: BookingState | None = None
    rebooked: bool = False
    answered: bool = False


def trigger_gone(trigger: Mapping[str, Any], facts: TriggerFacts, now: datetime) -> str | None:
    """Why the reason for a message no longer holds, if it does not (the message is then
    suppressed with that reason): the booking it is about was cancelled or moved or has
    begun, the client has booked again since, or someone already answered the client."""
    booking = facts.booking
    if booking is not None:
        if booking.deleted_at is not None or booking.status in ("cancelled", "invalid"):
            return "booking cancelled"
        booked_for = trigger.get("start_time")
        if booked_for and booking.start_time != datetime.fromisoformat(booked_for):
            return "booking moved"
        if booking.start_time <= now:
            return "session already started"
    if facts.rebooked:
        return "client rebooked"
    if facts.answered:
        return "reply already answered"
    return None


# --- the burst brake ------------------------------------------------------------------------


def burst_brake(sent: int, limit: int) -> str | None:
    """Why a studio's sending must stop now (a person is paged), if it must: it has sent,
    or has in flight, `limit` messages within the burst window already."""
    if sent < limit:
        return None
    return f"burst brake: {sent} messages in {BURST_WINDOW.seconds // 60} minutes"


# --- when GHL sent nothing ------------------------------------------------------------------


def retry_after(attempts: int) -> timedelta | None:
    """How long a message GHL did not send waits before its next claim (5 s, doubling, at
    most 10 minutes), or None once it has had `MAX_ATTEMPTS` claims: it fails for good."""
    if attempts >= MAX_ATTEMPTS:
        return None
    return timedelta(seconds=min(5 * 2 ** (attempts - 1), 600))


# --- finding a send whose answer was lost ---------------------------------------------------


def lost_send_window(claimed_at: datetime) -> datetime:
    """How far back the client's GHL conversation is searched for a message claimed then."""
    return claimed_at - CLOCK_SKEW


def is_lost_send(message: Mapping[str, Any], text: str, known: set[str]) -> bool:
    """Whether a message in the client's GHL conversation (within `lost_send_window`) is
    ours: outbound, with exactly the approved text (whitespace aside), and not already
    recorded as another of our messages (`known`: their GHL ids)."""
    return (
        message.get("direction") == "outbound"
        and _same_text(message.get("body"), text)
        and message.get("id") not in known
    )


def added_at(message: Mapping[str, Any]) -> datetime | None:
    """When GHL says the message was added; None if it does not say, or not legibly."""
    try:
        return parse_timestamp(message.get("dateAdded"))
    except ValueError:
        return None


def _same_text(theirs: object, ours: str) -> bool:
    return isinstance(theirs, str) and " ".join(theirs.split()) == " ".join(ours.split())
