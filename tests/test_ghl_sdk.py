"""GHL's official Python SDK (`gohighlevel-api-client`, which sends only `Version: v3`) works
against the simulator: what GHL's own client expects is what the simulator answers."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from highlevel import HighLevel

from ghl_simulator import Studio, generate_studio
from ghl_simulator.studio import STAGES, epoch_ms
from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator

LOCATION = "Lk7nWq3RzA9bXc2TfE5v"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, trainers=3, clients=80, days=30, seed=21, now=NOW)


@pytest.fixture(scope="module")
def sim(studio: Studio) -> Iterator[str]:
    with running_simulator(studio, rate_limit=None) as url:
        yield url


async def tour(url: str, studio: Studio) -> dict[str, Any]:
    """One pass over every API TrainU uses, as a GHL app built on the SDK would make it."""
    ghl = HighLevel(private_integration_token=SIM_TOKEN)
    ghl.http_client.base_url = url
    try:
        contacts = await ghl.contacts.search_contacts_advanced(
            {
                "locationId": LOCATION,
                "pageLimit": 20,
                "sort": [{"field": "dateUpdated", "direction": "desc"}],
            }
        )
        opted_out = next(c["id"] for c in studio.contacts.values() if c["dnd"] and not c["deleted"])
        dnd_contact = await ghl.contacts.get_contact(opted_out)
        location = await ghl.locations.get_location(LOCATION)
        company = location["location"]["companyId"]
        users = await ghl.users.search_users(company_id=company, location_id=LOCATION)
        calendars = await ghl.calendars.get_calendars(LOCATION)
        calendar_id = calendars["calendars"][0]["id"]
        events = await ghl.calendars.get_calendar_events(
            LOCATION,
            start_time=str(epoch_ms(NOW - timedelta(days=14))),
            end_time=str(epoch_ms(NOW)),
            calendar_id=calendar_id,
        )
        contact_id = next(
            c["id"] for c in contacts["contacts"] if not studio.contacts[c["id"]]["dnd"]
        )
        conversations = await ghl.conversations.search_conversation(LOCATION, contact_id=contact_id)
        pipelines = await ghl.opportunities.get_pipelines(LOCATION)
        sent = await ghl.conversations.send_a_new_message(
            {"type": "SMS", "contactId": contact_id, "message": "Sent through the SDK"}
        )
        conversation_id = conversations["conversations"][0]["id"]
        messages = await ghl.conversations.get_messages(conversation_id, limit=5)
    finally:
        await ghl.http_client.aclose()
    return {
        "contacts": contacts,
        "dnd_contact": dnd_contact,
        "location": location,
        "users": users,
        "calendar_id": calendar_id,
        "events": events,
        "contact_id": contact_id,
        "conversations": conversations,
        "pipelines": pipelines,
        "sent": sent,
        "messages": messages,
    }


def test_the_official_sdk_reads_and_sends_through_the_simulator(sim: str, studio: Studio) -> None:
    seen = asyncio.run(tour(sim, studio))
    contacts = seen["contacts"]["contacts"]
    live = [c for c in studio.contacts.values() if not c["deleted"]]
    assert seen["contacts"]["total"] == len(live) and len(contacts) == 20
    updated = [(c["dateUpdated"], c["id"]) for c in contacts]
    assert updated == sorted(updated, reverse=True)
    assert set(seen["dnd_contact"]["contact"]["dndSettings"]) == {"sms", "email", "call"}

    location = seen["location"]["location"]
    assert (location["id"], location["name"]) == (LOCATION, studio.location["name"])
    assert {u["id"] for u in seen["users"]["users"]} == set(studio.users)

    window = (NOW - timedelta(days=14), NOW)
    expected_events = {
        a["id"]
        for a in studio.appointments.values()
        if a["calendarId"] == seen["calendar_id"]
        and not a["deleted"]
        and window[0] <= datetime.fromisoformat(a["startTime"]) < window[1]
    }
    events = seen["events"]["events"]
    assert {e["id"] for e in events} == expected_events and expected_events
    assert all(e["deleted"] is False for e in events)  # v3 flags events

    (conversation,) = seen["conversations"]["conversations"]
    assert conversation["contactId"] == seen["contact_id"]
    (pipeline,) = seen["pipelines"]["pipelines"]
    assert [s["name"] for s in pipeline["stages"]] == list(STAGES)

    sent = seen["sent"]
    assert sent["conversationId"] == conversation["id"]
    newest = seen["messages"]["messages"][0]
    assert (newest["id"], newest["body"]) == (sent["messageId"], "Sent through the SDK")
