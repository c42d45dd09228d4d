"""The GHL client against the local simulator over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator
from trainu_dagster.ghl.client import GhlClient, GhlError, RequestBudget
from trainu_dagster.ghl.simulator import RateLimit, generate_studio

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
UNLIMITED = RequestBudget(requests=1_000_000, window=1.0)


@pytest.fixture(scope="module")
def studio():
    return generate_studio("loc-client", trainers=3, clients=450, days=30, seed=7, now=NOW)


@pytest.fixture(scope="module")
def sim_url(studio):
    with running_simulator(studio, rate_limit=None) as url:
        yield url


def client_for(url: str, **kwargs) -> GhlClient:
    return GhlClient(SIM_TOKEN, base_url=url, **{"budget": UNLIMITED, **kwargs})


def walk(fetch) -> list[dict]:
    """Every record of a keyset/cursor listing, following the client's cursors."""
    records, cursor = [], None
    while True:
        page = fetch(cursor)
        records.extend(page.records)
        if page.next_cursor is None:
            return records
        cursor = page.next_cursor


def sim_stats(url: str) -> dict:
    return httpx.get(url + "/_sim/stats").json()


def inject(url: str, status: int, count: int, path_prefix: str) -> None:
    response = httpx.post(
        url + "/_sim/faults", json={"status": status, "count": count, "path_prefix": path_prefix}
    )
    response.raise_for_status()


def test_contacts_page_to_the_end_without_gaps_or_duplicates(studio, sim_url) -> None:
    with client_for(sim_url) as client:
        contacts = walk(lambda cursor: client.contacts(studio.location_id, cursor))
    ids = [c["id"] for c in contacts]
    assert len(ids) == len(set(ids))
    live = {cid for cid, c in studio.contacts.items() if not c.get("deleted")}
    assert set(ids) == live
    assert len(ids) > 100  # really took several pages


def test_opportunities_and_messages_page_to_the_end(studio, sim_url) -> None:
    with client_for(sim_url) as client:
        opportunities = walk(lambda cursor: client.opportunities(studio.location_id, cursor))
        messages = [
            message
            for channel in (None, "Email")
            for message in walk(
                lambda cursor, channel=channel: client.messages(
                    studio.location_id,
                    updated_since=None,
                    cursor=cursor and cursor["cursor"],
                    channel=channel,
                )
            )
        ]
    assert sorted(o["id"] for o in opportunities) == sorted(
        oid for oid, o in studio.opportunities.items() if not o.get("deleted")
    )
    assert sorted(m["id"] for m in messages) == sorted(studio.messages)
    sms = [
        datetime.fromisoformat(m["dateUpdated"])
        for m in messages
        if m["messageType"] != "TYPE_EMAIL"
    ]
    assert sms == sorted(sms)  # oldest update first


def test_calendar_events_by_window(studio, sim_url) -> None:
    start, end = NOW - timedelta(days=7), NOW
    with client_for(sim_url) as client:
        calendars = client.calendars(studio.location_id)
        events = [
            e
            for cal in calendars
            for e in client.calendar_events(studio.location_id, cal["id"], start, end)
        ]
        one = client.appointment(studio.location_id, events[0]["id"])
    expected = {
        aid
        for aid, a in studio.appointments.items()
        if not a.get("deleted") and start <= datetime.fromisoformat(a["startTime"]) < end
    }
    assert {e["id"] for e in events} == expected
    assert one["id"] == events[0]["id"]


def test_a_429_is_waited_out_and_retried(studio) -> None:
    limit = RateLimit(2, 1.0, daily=200_000)  # 5 pages of contacts: must wait twice
    with running_simulator(studio, rate_limit=limit) as url, client_for(url) as client:
        contacts = walk(lambda cursor: client.contacts(studio.location_id, cursor))
        stats = sim_stats(url)
    assert len(contacts) == sum(1 for c in studio.contacts.values() if not c.get("deleted"))
    assert stats["rateLimited"] > 0  # the client really was told to slow down


def test_the_client_budget_keeps_under_the_limit_by_itself(studio) -> None:
    limit = RateLimit(2, 1.0, daily=200_000)
    budget = RequestBudget(requests=2, window=1.0)
    with running_simulator(studio, rate_limit=limit) as url, client_for(url, budget=budget) as c:
        contacts = walk(lambda cursor: c.contacts(studio.location_id, cursor))
        stats = sim_stats(url)
    assert len(contacts) > 2 * 100  # more pages than one window allows
    assert stats["rateLimited"] == 0


def test_5xx_bursts_are_retried_then_surfaced(studio) -> None:
    with running_simulator(studio, rate_limit=None) as url, client_for(url, max_attempts=3) as c:
        inject(url, 502, 2, "/contacts")
        assert c.contacts(studio.location_id).records  # two failures, then the answer
        inject(url, 503, 5, "/contacts")
        with pytest.raises(GhlError) as failure:
            c.contacts(studio.location_id)
        by_status = sim_stats(url)["byStatus"]
    assert failure.value.status == 503
    assert (by_status["502"], by_status["503"], by_status["200"]) == (2, 3, 1)


def test_sending_a_message_is_not_retried_after_a_5xx(studio, sim_url) -> None:
    contact_id = next(
        cid for cid, c in studio.contacts.items() if not c.get("dnd") and not c.get("deleted")
    )
    with client_for(sim_url) as client:
        before = len(studio.messages)
        inject(sim_url, 502, 1, "/conversations/messages")
        with pytest.raises(GhlError) as failure:
            client.send_message(
                studio.location_id, contact_id=contact_id, channel="SMS", message="See you!"
            )
        assert failure.value.status == 502
        assert len(studio.messages) == before  # one attempt, refused: nothing sent
        sent = client.send_message(
            studio.location_id, contact_id=contact_id, channel="SMS", message="See you!"
        )
    assert sent["messageId"] in studio.messages


def test_wrong_token_is_a_clear_error(studio, sim_url) -> None:
    with (
        GhlClient("not-a-token", base_url=sim_url, budget=UNLIMITED) as client,
        pytest.raises(GhlError) as failure,
    ):
        client.contacts(studio.location_id)
    assert failure.value.status == 401


def test_request_budget_is_a_sliding_window() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    budget = RequestBudget(requests=3, window=10.0, margin=0.0, clock=lambda: now[0], sleep=sleep)
    for at in (0.0, 1.0, 2.0):
        now[0] = at
        budget.acquire("loc")
    assert slept == []
    budget.acquire("loc")  # the 4th waits until the 1st leaves the window
    assert now[0] == pytest.approx(10.0)
    budget.acquire("other-location")  # budgets are per location
    assert len(slept) == 1


def test_request_budget_stops_at_the_daily_limit() -> None:
    budget = RequestBudget(requests=100, daily=2)
    budget.acquire("loc")
    budget.acquire("loc")
    with pytest.raises(GhlError, match="daily limit"):
        budget.acquire("loc")
