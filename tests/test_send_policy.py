"""The send-time rules, each on its own: opt-out, trigger, approval expiry, caps and the
client's sending window across timezones and both DST changes."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from trainu_dagster.messaging.policy import (
    SEND,
    Decision,
    SendFacts,
    SendRules,
    decide,
    window_opens_at,
)

NY, LA, SYDNEY = (
    ZoneInfo("America/New_York"),
    ZoneInfo("America/Los_Angeles"),
    ZoneInfo("Australia/Sydney"),
)
RULES = SendRules()


def at(zone: ZoneInfo, *fields: int) -> datetime:
    return datetime(*fields, tzinfo=zone).astimezone(UTC)


def facts(now: datetime, **changes) -> SendFacts:  # noqa: ANN003
    base = {"purpose": "re_engagement", "approved_at": now - timedelta(hours=1), "zone": NY}
    return SendFacts(**(base | changes))


def test_inside_the_window_with_nothing_against_it_the_message_goes() -> None:
    now = at(NY, 2026, 12, 3, 10, 0)
    assert decide(facts(now), RULES, now) == SEND


@pytest.mark.parametrize(
    ("zone", "local", "opens"),
    [
        # late evening: tomorrow 08:00; early morning: today 08:00; 21:00 sharp is closed
        (NY, (2026, 12, 3, 22, 30), (2026, 12, 4, 8, 0)),
        (NY, (2026, 12, 3, 6, 15), (2026, 12, 3, 8, 0)),
        (NY, (2026, 12, 3, 21, 0), (2026, 12, 4, 8, 0)),
        (LA, (2026, 12, 3, 23, 59), (2026, 12, 4, 8, 0)),
        (SYDNEY, (2026, 12, 3, 2, 0), (2026, 12, 3, 8, 0)),
        # the nights the clocks change: the window opens at 08:00 local on the new offset
        (NY, (2026, 3, 7, 23, 0), (2026, 3, 8, 8, 0)),  # spring forward 02:00 → 03:00
        (NY, (2026, 10, 31, 23, 0), (2026, 11, 1, 8, 0)),  # fall back 02:00 → 01:00
        (SYDNEY, (2026, 4, 4, 22, 0), (2026, 4, 5, 8, 0)),  # southern autumn
        (SYDNEY, (2026, 10, 3, 22, 0), (2026, 10, 4, 8, 0)),  # southern spring
    ],
)
def test_outside_the_window_it_is_held_until_8am_in_the_clients_own_time(
    zone: ZoneInfo, local: tuple[int, ...], opens: tuple[int, ...]
) -> None:
    now = at(zone, *local)
    decision = decide(facts(now, zone=zone), RULES, now)
    assert decision == Decision("hold", "quiet hours", at(zone, *opens))
    assert decision.until.astimezone(zone).time() == time(8, 0)


def test_the_dst_mornings_are_an_hour_apart_in_utc_as_they_should_be() -> None:
    before = window_opens_at(at(NY, 2026, 3, 7, 23, 0), NY, time(8), time(21))
    after = window_opens_at(at(NY, 2026, 3, 8, 23, 0), NY, time(8), time(21))
    assert (before.hour, after.hour) == (12, 12)  # 08:00 EDT = 12:00 UTC both days
    earlier = window_opens_at(at(NY, 2026, 3, 6, 23, 0), NY, time(8), time(21))
    assert earlier.hour == 13  # 08:00 EST, the day before the change


def test_a_stricter_studio_window_is_honoured() -> None:
    strict = SendRules(window_end=time(20), max_per_day=3)
    now = at(NY, 2026, 12, 3, 20, 30)
    assert decide(facts(now), strict, now).until == at(NY, 2026, 12, 4, 8, 0)
    assert decide(facts(now), RULES, now) == SEND


@pytest.mark.parametrize("why", ["GHL DND on SMS", "STOP reply", "opted out in TrainU"])
def test_an_opted_out_client_is_never_written_to_not_even_later(why: str) -> None:
    now = at(NY, 2026, 12, 3, 23, 0)  # quiet hours too: suppression wins over holding
    assert decide(facts(now, opted_out=why), RULES, now) == Decision("suppress", why)


def test_an_opt_out_allows_its_one_confirmation_and_nothing_else() -> None:
    now = at(NY, 2026, 12, 3, 10, 0)
    stopped = {"opted_out": "STOP reply", "purpose": "opt_out_confirmation"}
    assert decide(facts(now, **stopped, confirms_opt_out=True), RULES, now) == SEND
    # already confirmed, or GHL's own opt-out (GHL confirms it): not sent
    assert decide(facts(now, **stopped), RULES, now).action == "suppress"
    # the confirmation does not open the door to anything else
    other = facts(now, opted_out="STOP reply", purpose="reply", confirms_opt_out=False)
    assert decide(other, RULES, now) == Decision("suppress", "STOP reply")
    # and still waits for the client's morning
    night = at(NY, 2026, 12, 3, 23, 0)
    assert decide(facts(night, **stopped, confirms_opt_out=True), RULES, night).action == "hold"


def test_a_trigger_that_no_longer_holds_suppresses() -> None:
    now = at(NY, 2026, 12, 3, 10, 0)
    decision = decide(facts(now, trigger_gone="booking cancelled"), RULES, now)
    assert decision == Decision("suppress", "booking cancelled")


def test_an_approval_older_than_the_expiry_goes_back_to_the_inbox() -> None:
    now = at(NY, 2026, 12, 3, 10, 0)
    old = facts(now, approved_at=now - timedelta(hours=49))
    assert decide(old, RULES, now) == Decision("stale", "approval expired")
    assert decide(old, SendRules(approval_expiry=timedelta(days=3)), now) == SEND


def test_the_daily_cap_holds_until_the_last_message_is_a_day_old() -> None:
    now = at(NY, 2026, 12, 3, 16, 0)
    sent = now - timedelta(hours=5)
    decision = decide(facts(now, recent=[(sent, False)]), RULES, now)
    assert decision == Decision("hold", "frequency cap", sent + timedelta(hours=24))


def test_the_weekly_cap_counts_seven_days_and_a_message_sent_from_ghl_counts_too() -> None:
    now = at(NY, 2026, 12, 3, 10, 0)
    recent = [(now - timedelta(days=d), False) for d in (6, 4, 2)]
    decision = decide(facts(now, recent=recent), RULES, now)
    assert decision.action == "hold"
    assert decision.until == now - timedelta(days=6) + timedelta(days=7)
    # one more allowed per week: it goes
    assert decide(facts(now, recent=recent), SendRules(max_per_week=4), now) == SEND


def test_a_cap_released_in_quiet_hours_waits_for_the_window() -> None:
    now = at(NY, 2026, 12, 3, 10, 0)
    sent = at(NY, 2026, 12, 2, 22, 30)  # the cap clears at 22:30 tonight
    decision = decide(facts(now, recent=[(sent, False)]), SendRules(max_per_day=1), now)
    assert decision == Decision("hold", "frequency cap", at(NY, 2026, 12, 4, 8, 0))


def test_service_messages_have_their_own_allowance() -> None:
    now = at(NY, 2026, 12, 3, 10, 0)
    marketing_today = [(now - timedelta(hours=2), False)]
    # a re-engagement this morning does not block the reminder of tomorrow's session
    assert decide(facts(now, purpose="reminder", recent=marketing_today), RULES, now) == SEND
    # but a confirmation this morning blocks a re-engagement (it counts every message)
    service_today = [(now - timedelta(hours=2), True)]
    assert decide(facts(now, recent=service_today), RULES, now).action == "hold"
    # and service messages stop at their own allowance
    three = [(now - timedelta(hours=h), True) for h in (1, 2, 3)]
    assert decide(facts(now, purpose="confirmation", recent=three), RULES, now).action == "hold"


def test_a_studio_may_suppress_over_cap_instead_of_holding() -> None:
    now = at(NY, 2026, 12, 3, 10, 0)
    rules = SendRules(over_cap="suppress")
    decision = decide(facts(now, recent=[(now - timedelta(hours=1), False)]), rules, now)
    assert decision == Decision("suppress", "frequency cap")
