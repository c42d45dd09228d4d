"""The simulator's searches and listings behave as GHL documents them, in both API versions:
contact search's keyset order and filters, conversations and their messages, the studio's
location and users."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ghl_simulator import Studio, generate_studio
from ghl_simulator.studio import epoch_ms
from tests.ghl_simulator_harness import API_VERSIONS, api_headers, running_simulator

LOCATION = "Lk7nWq3RzA9bXc2TfE5v"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, clients=150, days=60, seed=5, now=NOW)


@pytest.fixture(scope="module")
def sim(studio: Studio) -> Iterator[str]:
    with running_simulator(studio, rate_limit=None) as url:
        yield url


def ask(sim: str, method: str, path: str, api: str, version: str, **kw: Any) -> httpx.Response:
    headers = api_headers(api, version=version)
    return httpx.request(method, sim + path, headers=headers, timeout=10, **kw)


def search(sim: str, version: str, **body: Any) -> dict[str, Any]:
    answer = ask(
        sim, "POST", "/contacts/search", "contacts", version, json={"locationId": LOCATION, **body}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def live_contacts(studio: Studio) -> list[dict[str, Any]]:
    return [c for c in studio.contacts.values() if not c["deleted"]]


def keyed(contacts: list[dict[str, Any]], field: str) -> list[tuple[int, str]]:
    return [(epoch_ms(c[field]), c["id"]) for c in contacts]


@pytest.mark.parametrize("version", API_VERSIONS)
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_contact_search_pages_in_keyset_order(
    sim: str, studio: Studio, version: str, direction: str
) -> None:
    """searchAfter and page numbers walk the same (sort value, id) order, each contact once."""
    sort = [{"field": "dateUpdated", "direction": direction}]
    by_after, after = [], None
    while True:
        body = {"pageLimit": 40, "sort": sort} | ({"searchAfter": after} if after else {})
        page = search(sim, version, **body)["contacts"]
        by_after += page
        if len(page) < 40:
            break
        after = page[-1]["searchAfter"]
    by_number = [
        c
        for number in range(1, len(by_after) // 40 + 2)
        for c in search(sim, version, pageLimit=40, page=number, sort=sort)["contacts"]
    ]
    expected = sorted(keyed(live_contacts(studio), "dateUpdated"), reverse=direction == "desc")
    assert keyed(by_after, "dateUpdated") == expected
    assert [c["searchAfter"] for c in by_after] == [list(key) for key in expected]
    assert by_number == by_after


@pytest.mark.parametrize("version", API_VERSIONS)
def test_contact_search_filters_by_date_range_and_id(
    sim: str, studio: Studio, version: str
) -> None:
    contacts = live_contacts(studio)
    added = sorted(c["dateAdded"] for c in contacts)
    low, high = added[10], added[60]
    window = {"field": "dateAdded", "operator": "range", "value": {"gt": low, "lte": high}}
    found = search(sim, version, pageLimit=500, filters=[window])
    expected = {c["id"] for c in contacts if low < c["dateAdded"] <= high}
    assert {c["id"] for c in found["contacts"]} == expected and found["total"] == len(expected)
    since = {"field": "dateUpdated", "operator": "range", "value": {"gte": epoch_ms(low)}}
    assert search(sim, version, pageLimit=1, filters=[since])["total"] == sum(
        c["dateUpdated"] >= low for c in contacts
    )
    one = contacts[7]
    by_id = search(
        sim, version, pageLimit=5, filters=[{"field": "id", "operator": "eq", "value": one["id"]}]
    )
    assert [c["id"] for c in by_id["contacts"]] == [one["id"]]
    assert by_id["contacts"][0]["email"] == one["email"]  # a full record, not a summary


def test_contact_search_by_default_lists_the_newest_added_first(sim: str, studio: Studio) -> None:
    found = search(sim, "v3", pageLimit=5)
    newest = sorted(keyed(live_contacts(studio), "dateAdded"), reverse=True)[:5]
    assert keyed(found["contacts"], "dateAdded") == newest
    assert found["total"] == len(live_contacts(studio))


def test_contact_search_refuses_another_location(sim: str) -> None:
    answer = ask(
        sim, "POST", "/contacts/search", "contacts", "v3", json={"locationId": "x", "pageLimit": 5}
    )
    assert answer.status_code == 403


@pytest.mark.parametrize("version", API_VERSIONS)
def test_conversation_search_summarises_each_contacts_messages(
    sim: str, studio: Studio, version: str
) -> None:
    contact = next(c for c in live_contacts(studio) if not c["dnd"])
    conversation = studio.conversation_for(contact["id"])
    latest = max(
        (m for m in studio.messages.values() if m["conversationId"] == conversation["id"]),
        key=lambda m: (m["dateAdded"], m["id"]),
    )
    found = ask(
        sim, "GET", "/conversations/search", "conversations", version,
        params={"locationId": LOCATION, "contactId": contact["id"]},
    ).json()  # fmt: skip
    assert found["total"] == 1
    (summary,) = found["conversations"]
    assert summary["id"] == conversation["id"] and summary["contactId"] == contact["id"]
    assert (summary["lastMessageBody"], summary["lastMessageType"]) == (
        latest["body"],
        latest["messageType"],
    )
    assert (summary["fullName"], summary["email"], summary["phone"]) == (
        contact["name"],
        contact["email"],
        contact["phone"],
    )


def test_conversation_search_pages_by_start_after_date(sim: str, studio: Studio) -> None:
    seen: list[dict[str, Any]] = []
    params: dict[str, Any] = {"locationId": LOCATION, "limit": 25}
    while True:
        page = ask(sim, "GET", "/conversations/search", "conversations", "v3", params=params)
        conversations = page.json()["conversations"]
        seen += conversations
        if len(conversations) < 25:
            break
        params["startAfterDate"] = conversations[-1]["lastMessageDate"]
    with_messages = {m["conversationId"] for m in studio.messages.values()}
    live = {c["id"] for c in studio.conversations.values() if c["id"] in with_messages} - {
        c["id"] for c in studio.conversations.values() if studio.contacts[c["contactId"]]["deleted"]
    }
    assert sorted(c["id"] for c in seen) == sorted(live)
    dates = [c["lastMessageDate"] for c in seen]
    assert dates == sorted(dates, reverse=True)  # the latest activity first


@pytest.mark.parametrize("version", API_VERSIONS)
def test_conversation_messages_page_newest_first(sim: str, studio: Studio, version: str) -> None:
    conversation = max(
        studio.conversations.values(),
        key=lambda c: sum(m["conversationId"] == c["id"] for m in studio.messages.values()),
    )
    path = f"/conversations/{conversation['id']}/messages"
    pages, params = [], {"limit": 2}
    while True:
        body = ask(sim, "GET", path, "conversations", version, params=params).json()
        pages.append(body["messages"])
        if not body["nextPage"]:
            break
        assert body["lastMessageId"] == body["messages"][-1]["id"]
        params["lastMessageId"] = body["lastMessageId"]
    walked = [m for page in pages for m in page]
    expected = sorted(
        (m for m in studio.messages.values() if m["conversationId"] == conversation["id"]),
        key=lambda m: (epoch_ms(m["dateAdded"]), m["id"]),
        reverse=True,
    )
    assert len(pages) > 1 and [m["id"] for m in walked] == [m["id"] for m in expected]
    emails = ask(sim, "GET", path, "conversations", version, params={"type": "TYPE_EMAIL"})
    assert {m["messageType"] for m in emails.json()["messages"]} <= {"TYPE_EMAIL"}


def test_a_sent_message_is_the_newest_of_its_conversation(sim: str, studio: Studio) -> None:
    contact = next(c for c in live_contacts(studio) if not c["dnd"])
    sent = ask(
        sim, "POST", "/conversations/messages", "conversations", "v3",
        json={"type": "SMS", "contactId": contact["id"], "message": "Your 7am is confirmed"},
    ).json()  # fmt: skip
    path = f"/conversations/{sent['conversationId']}/messages"
    newest = ask(sim, "GET", path, "conversations", "v3", params={"limit": 1}).json()
    (message,) = newest["messages"]
    assert (message["id"], message["body"], message["direction"]) == (
        sent["messageId"],
        "Your 7am is confirmed",
        "outbound",
    )


def test_location_and_users_are_the_studios(sim: str, studio: Studio) -> None:
    location = ask(sim, "GET", f"/locations/{LOCATION}", "locations", "v3").json()["location"]
    assert location["name"] == studio.location["name"]
    assert location["timezone"] == "America/New_York" and location["address"]
    assert len(location["companyId"]) == 20
    company = {"companyId": location["companyId"]}
    found = ask(sim, "GET", "/users/search", "users", "v3", params=company).json()
    assert found["count"] == len(studio.users)
    assert {u["id"] for u in found["users"]} == set(studio.users)
    query = next(iter(studio.users.values()))["lastName"]
    named = {
        u["id"]
        for u in studio.users.values()
        if query.lower() in u["name"].lower() or query.lower() in u["email"]
    }
    narrowed = ask(
        sim, "GET", "/users/search", "users", "v3",
        params={**company, "query": query.upper(), "limit": 1},
    ).json()  # fmt: skip
    assert narrowed["count"] == len(named) and len(narrowed["users"]) == 1
    assert {u["id"] for u in narrowed["users"]} <= named
    foreign = ask(sim, "GET", "/users/search", "users", "v3", params={"companyId": "other"})
    assert foreign.status_code == 403
    deprecated = ask(sim, "GET", "/users/", "users", "v2", params={"locationId": LOCATION})
    assert {u["id"] for u in deprecated.json()["users"]} == set(studio.users)
    other = ask(sim, "GET", "/locations/elsewhere", "locations", "v2")
    assert other.status_code == 403


def test_the_generated_location_is_stable() -> None:
    """The location's added fields come from its id, not the seed's draws."""
    one = generate_studio(LOCATION, clients=5, seed=1, now=NOW).location
    two = generate_studio(LOCATION, clients=5, seed=2, now=NOW).location
    fields = ("companyId", "address", "phone", "postalCode")
    assert {k: one[k] for k in fields} == {k: two[k] for k in fields}
