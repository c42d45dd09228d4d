"""The GHL client against the local simulator over real HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ghl_simulator import RateLimit, generate_studio
from ghl_simulator.studio import STAGES
from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator
from tests.receiver_harness import serving
from trainu_dagster.ghl.budget import RequestBudget
from trainu_dagster.ghl.client import SEARCH_PAGE_SIZE, GhlClient
from trainu_dagster.ghl.errors import GhlError

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


def walk(fetch, cursor=None) -> list[dict]:
    """Every record of a keyset/cursor listing from `cursor` on, following the client's
    cursors."""
    records = []
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


@pytest.fixture(scope="module")
def crowd():
    """More contacts than one search page holds."""
    return generate_studio("loc-crowd", trainers=3, clients=1200, days=14, seed=11, now=NOW)


@pytest.fixture(scope="module")
def crowd_url(crowd):
    with running_simulator(crowd, rate_limit=None) as url:
        yield url


def live_contacts(studio) -> dict[str, dict]:
    return {cid: c for cid, c in studio.contacts.items() if not c.get("deleted")}


def search_walk(client: GhlClient, location_id: str, start=None, **kwargs) -> list[dict]:
    """Every contact `search_contacts` finds, from the cursor `start` on."""
    return walk(
        lambda cursor: client.search_contacts(
            location_id, search_after=cursor and cursor["searchAfter"], **kwargs
        ),
        start,
    )


def test_search_contacts_pages_every_live_contact_exactly_once(crowd, crowd_url) -> None:
    with client_for(crowd_url) as client:
        contacts = search_walk(client, crowd.location_id)
    ids = [c["id"] for c in contacts]
    assert len(ids) == len(set(ids)) > 2 * SEARCH_PAGE_SIZE  # really took several pages
    assert set(ids) == set(live_contacts(crowd))
    order = [(c["dateUpdated"], c["id"]) for c in contacts]
    assert order == sorted(order)  # least recently updated first, then id


def test_search_contacts_since_a_time_returns_what_changed_from_then(crowd, crowd_url) -> None:
    """Most of the crowd was last touched at the same instant: the (dateUpdated, id) keyset
    pages through the tie."""
    updated = sorted(c["dateUpdated"] for c in live_contacts(crowd).values())
    cut = updated[len(updated) // 4]
    with client_for(crowd_url) as client:
        since = search_walk(client, crowd.location_id, updated_since=datetime.fromisoformat(cut))
    expected = [cid for cid, c in live_contacts(crowd).items() if c["dateUpdated"] >= cut]
    assert sorted(c["id"] for c in since) == sorted(expected)
    assert SEARCH_PAGE_SIZE < len(expected) < len(updated)


def test_a_contact_updated_mid_walk_comes_again_later() -> None:
    studio = generate_studio("loc-moving", trainers=2, clients=700, days=7, seed=12, now=NOW)
    with running_simulator(studio, rate_limit=None) as url, client_for(url) as client:
        first = client.search_contacts(studio.location_id)
        moved = first.records[0]["id"]
        studio.update_contact(moved, NOW + timedelta(hours=1), email="moved@example.com")
        rest = search_walk(client, studio.location_id, start=first.next_cursor)
    ids = [c["id"] for c in first.records + rest]
    assert ids.count(moved) == 2 and rest[-1]["email"] == "moved@example.com"
    assert set(ids) == set(live_contacts(studio))


def test_location_users_and_pipelines(studio, sim_url) -> None:
    with client_for(sim_url) as client:
        location = client.location(studio.location_id)
        users = client.users(studio.location_id)
        pipelines = client.pipelines(studio.location_id)
    assert (location["id"], location["name"]) == (studio.location_id, studio.location["name"])
    assert location["timezone"] == "America/New_York" and location["companyId"]
    assert sorted(u["id"] for u in users) == sorted(studio.users)
    (pipeline,) = pipelines
    assert pipeline["id"] == studio.pipeline["id"]
    assert [s["name"] for s in pipeline["stages"]] == list(STAGES)


def test_users_pages_through_a_large_team() -> None:
    studio = generate_studio("loc-team", trainers=230, clients=10, days=3, seed=13, now=NOW)
    with running_simulator(studio, rate_limit=None) as url, client_for(url) as client:
        users = client.users(studio.location_id)
        requests = sim_stats(url)["byRoute"]["GET /users/search"]["200"]
    assert sorted(u["id"] for u in users) == sorted(studio.users)
    assert requests == 3  # 100 a page


def test_conversations_and_their_messages(studio, sim_url) -> None:
    contact_id = next(
        cid
        for cid, c in live_contacts(studio).items()
        if sum(m["contactId"] == cid for m in studio.messages.values()) >= 4
    )
    with client_for(sim_url) as client:
        (conversation,) = client.conversations(studio.location_id, contact_id=contact_id)
        messages = walk(
            lambda cursor: client.conversation_messages(
                studio.location_id,
                conversation["id"],
                last_message_id=cursor and cursor["lastMessageId"],
                limit=3,
            )
        )
        latest = client.conversations(studio.location_id, limit=5)
    expected = sorted(
        (m for m in studio.messages.values() if m["conversationId"] == conversation["id"]),
        key=lambda m: (m["dateAdded"], m["id"]),
        reverse=True,
    )
    assert conversation["contactId"] == contact_id
    assert [m["id"] for m in messages] == [m["id"] for m in expected]  # newest first
    dates = [c["lastMessageDate"] for c in latest]
    assert len(latest) == 5 and dates == sorted(dates, reverse=True)


def test_a_sent_message_is_read_back_from_its_conversation(studio, sim_url) -> None:
    contact_id = next(cid for cid, c in live_contacts(studio).items() if not c["dnd"])
    with client_for(sim_url) as client:
        sent = client.send_message(
            studio.location_id, contact_id=contact_id, channel="SMS", message="Running late!"
        )
        newest = client.conversation_messages(
            studio.location_id, sent["conversationId"], limit=1
        ).records
    assert [(m["id"], m["body"]) for m in newest] == [(sent["messageId"], "Running late!")]


def test_conversation_messages_also_reads_the_nested_answer_live_ghl_gives() -> None:
    """The spec puts the page at the top level; live GHL has been seen to nest it."""

    async def nested(request: Request) -> JSONResponse:
        page = {"lastMessageId": "m2", "nextPage": True, "messages": [{"id": "m1"}, {"id": "m2"}]}
        return JSONResponse({"messages": page, "traceId": "t"})

    app = Starlette(routes=[Route("/conversations/{conversationId}/messages", nested)])
    with serving(app) as url, client_for(url) as client:
        page = client.conversation_messages("loc", "c1", limit=2)
    assert [m["id"] for m in page.records] == ["m1", "m2"]
    assert page.next_cursor == {"lastMessageId": "m2"}


def live_opportunities(studio) -> int:
    return sum(1 for o in studio.opportunities.values() if not o.get("deleted"))


def test_a_429_is_waited_out_and_retried(studio) -> None:
    limit = RateLimit(2, 1.0, daily=200_000)  # 5 pages of opportunities: must wait twice
    with running_simulator(studio, rate_limit=limit) as url, client_for(url) as client:
        found = walk(lambda cursor: client.opportunities(studio.location_id, cursor))
        stats = sim_stats(url)
    assert len(found) == live_opportunities(studio) > 400
    assert stats["rateLimited"] > 0  # the client really was told to slow down


def test_the_client_budget_keeps_under_the_limit_by_itself(studio) -> None:
    limit = RateLimit(2, 1.0, daily=200_000)
    budget = RequestBudget(requests=2, window=1.0)
    with running_simulator(studio, rate_limit=limit) as url, client_for(url, budget=budget) as c:
        found = walk(lambda cursor: c.opportunities(studio.location_id, cursor))
        stats = sim_stats(url)
    assert len(found) > 2 * 100  # more pages than one window allows
    assert stats["rateLimited"] == 0


def test_5xx_bursts_are_retried_then_surfaced(studio) -> None:
    with running_simulator(studio, rate_limit=None) as url, client_for(url, max_attempts=3) as c:
        inject(url, 502, 2, "/opportunities")
        assert c.opportunities(studio.location_id).records  # two failures, then the answer
        inject(url, 503, 5, "/opportunities")
        with pytest.raises(GhlError) as failure:
            c.opportunities(studio.location_id)
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
        client.search_contacts(studio.location_id)
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
        with budget.slot("loc"):
            pass
    assert slept == []
    with budget.slot("loc"):  # the 4th waits until the 1st leaves the window
        pass
    assert now[0] == pytest.approx(10.0)
    with budget.slot("other-location"):  # budgets are per location
        pass
    assert len(slept) == 1


def test_request_budget_counts_a_request_from_its_answer_not_its_departure() -> None:
    """GHL counts a request when it arrives, which a slow network or a busy server puts
    anywhere up to its answer: the next request in its slot waits a window from then."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    budget = RequestBudget(requests=1, window=10.0, margin=0.0, clock=lambda: now[0], sleep=sleep)
    with budget.slot("loc"):
        now[0] = 3.0  # the answer took three seconds
    with budget.slot("loc"):
        assert now[0] == pytest.approx(13.0)


def test_request_budget_stops_at_the_daily_limit() -> None:
    budget = RequestBudget(requests=100, daily=2)
    for _ in range(2):
        with budget.slot("loc"):
            pass
    with pytest.raises(GhlError, match="daily limit"), budget.slot("loc"):
        pass
