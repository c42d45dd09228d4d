"""The simulator's churn: clients fade out, stop at once, take a break or stay, and the
ground truth says which, so a backtest of the risk score measures something real."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from ghl_simulator import Studio, generate_studio
from ghl_simulator.studio import Churn

NOW = datetime(2026, 11, 1, 15, tzinfo=UTC)
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio("churn-location", clients=1500, days=240, seed=7, now=NOW)


def sessions_of(studio: Studio) -> dict[str, list[tuple[datetime, str]]]:
    """Live appointments per contact: (start, status)."""
    by: dict[str, list[tuple[datetime, str]]] = defaultdict(list)
    for a in studio.appointments.values():
        if not a.get("deleted"):
            by[a["contactId"]].append(
                (datetime.fromisoformat(a["startTime"]), a["appointmentStatus"])
            )
    return by


def at(value: str | None) -> datetime:
    assert value is not None
    return datetime.fromisoformat(value)


def window(sessions: list[tuple[datetime, str]], start: datetime, end: datetime) -> list[str]:
    return [status for when, status in sessions if start <= when < end]


def test_engagement_curves() -> None:
    onset, until = NOW - 30 * DAY, NOW
    fade = Churn("fade", onset, until, shape=1.0)
    levels = [fade.engagement(onset + i * DAY) for i in range(-5, 35)]
    assert levels[:5] == [1.0] * 5 and levels[-5:] == [0.0] * 5
    assert all(a >= b for a, b in zip(levels, levels[1:], strict=False))
    assert 0.4 < fade.engagement(onset + 15 * DAY) < 0.6
    early = Churn("fade", onset, until, shape=0.5).engagement(onset + 15 * DAY)
    late = Churn("fade", onset, until, shape=2.0).engagement(onset + 15 * DAY)
    assert late < 0.5 < early  # the curve's shape varies between clients
    sudden = Churn("sudden", until=until)
    assert sudden.engagement(until - DAY) == 1.0 and sudden.engagement(until) == 0.0
    pause = Churn("pause", onset, until)
    assert [pause.engagement(t) for t in (onset - DAY, onset, until - DAY, until)] == [
        1.0,
        0.0,
        0.0,
        1.0,
    ]
    assert Churn("steady").engagement(NOW) == 1.0


def test_every_client_has_its_churn_in_the_ground_truth(studio: Studio) -> None:
    churn = studio.truth()["churn"]
    assert set(churn) == set(studio.profiles), "every client, never a lead"
    kinds = Counter(record["kind"] for record in churn.values())
    assert set(kinds) == {"steady", "fade", "sudden", "pause"}
    assert kinds["steady"] > len(churn) / 2  # most clients stay
    assert studio.summary()["churn"] == dict(kinds)
    churned = {c["id"] for c in studio.contacts.values() if "churned" in c["tags"]}
    assert churned
    for contact_id in churned:
        record = churn[contact_id]
        assert record["kind"] in {"fade", "sudden"}
        assert at(record["until"]) < NOW
    # some clients are fading right now: their stop is still ahead
    assert any(
        r["kind"] == "fade" and at(r["onset"]) < NOW < at(r["until"]) for r in churn.values()
    )


def test_fading_clients_book_less_and_miss_more_before_they_stop(studio: Studio) -> None:
    churn, by = studio.truth()["churn"], sessions_of(studio)
    before: Counter[str] = Counter()
    fading: Counter[str] = Counter()
    for contact_id, record in churn.items():
        if record["kind"] != "fade" or at(record["until"]) >= NOW:
            continue
        onset, until = at(record["onset"]), at(record["until"])
        before.update(window(by[contact_id], onset - 28 * DAY, onset))
        fading.update(window(by[contact_id], until - (until - onset) / 2, until))
        assert not window(by[contact_id], until, NOW + 30 * DAY), "stopped means stopped"
    span = sum(before.values()), sum(fading.values())
    assert min(span) > 100
    kept_before = before["showed"] / span[0]
    kept_fading = fading["showed"] / span[1]
    assert kept_fading < kept_before - 0.15, (before, fading)


def test_sudden_stops_give_no_warning(studio: Studio) -> None:
    churn, by = studio.truth()["churn"], sessions_of(studio)
    earlier: Counter[str] = Counter()
    last: Counter[str] = Counter()
    for contact_id, record in churn.items():
        if record["kind"] != "sudden":
            continue
        until = at(record["until"])
        earlier.update(window(by[contact_id], until - 56 * DAY, until - 28 * DAY))
        last.update(window(by[contact_id], until - 28 * DAY, until))
        assert not window(by[contact_id], until, NOW + 30 * DAY)
    assert sum(earlier.values()) > 50
    kept = (earlier["showed"] / sum(earlier.values()), last["showed"] / sum(last.values()))
    assert abs(kept[0] - kept[1]) < 0.1, (earlier, last)


def test_a_break_has_no_sessions_and_the_client_comes_back(studio: Studio) -> None:
    churn, by = studio.truth()["churn"], sessions_of(studio)
    returned = away = 0
    for contact_id, record in churn.items():
        if record["kind"] != "pause":
            continue
        onset, until = at(record["onset"]), at(record["until"])
        assert not window(by[contact_id], onset, until)
        if until < NOW:
            away += 1
            returned += bool(window(by[contact_id], until, NOW + 21 * DAY))
    assert away > 20 and returned / away > 0.9


def test_steady_clients_skip_some_weeks_but_keep_coming(studio: Studio) -> None:
    churn, by = studio.truth()["churn"], sessions_of(studio)
    booked = possible = 0
    for contact_id, profile in studio.profiles.items():
        contact = studio.contacts[contact_id]
        if churn[contact_id]["kind"] != "steady" or "churned" in contact["tags"]:
            continue
        starts = [when for when, _ in by[contact_id] if NOW - 84 * DAY <= when < NOW]
        joined = at(contact["dateAdded"])
        if joined > NOW - 90 * DAY:
            continue
        booked += len(starts)
        possible += 12 * len(profile.slots)
    assert possible > 1000
    assert 0.8 < booked / possible < 0.97  # a real client misses weeks; none is a clockwork


def test_live_sessions_follow_engagement() -> None:
    studio = generate_studio("churn-live", clients=800, days=60, seed=11, now=NOW)
    studio.advance(random.Random(3), NOW + 21 * DAY)
    churn = studio.truth()["churn"]
    missed: Counter[str] = Counter()
    total: Counter[str] = Counter()
    for change in studio.changes:
        if change.event_type != "AppointmentUpdate":
            continue
        status = change.record["appointmentStatus"]
        if status not in {"showed", "noshow"}:
            continue
        kind = churn[change.record["contactId"]]["kind"]
        total[kind] += 1
        missed[kind] += status == "noshow"
    assert total["steady"] > 200 and total["fade"] > 20
    assert missed["fade"] / total["fade"] > 2 * missed["steady"] / total["steady"]
