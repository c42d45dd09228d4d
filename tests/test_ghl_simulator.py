"""The GHL simulator: a believable, reproducible studio behind GHL's rules, over real HTTP."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghl_simulator import RateLimit, Studio, generate_studio
from ghl_simulator.live import StudioKeeper
from ghl_simulator.studio import epoch_ms
from tests.cli_harness import GHL_SIMULATOR
from tests.ghl_simulator_harness import SIM_TOKEN, api_headers, running_simulator
from tests.receiver_harness import free_port

LOCATION = "Lk7nWq3RzA9bXc2TfE5v"
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)  # the window spans the end of DST (1 Nov)
GHL_ID = re.compile(r"^[A-Za-z0-9]{20}$")


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, clients=200, seed=7, now=NOW)


@pytest.fixture(scope="module")
def sim(studio: Studio) -> Iterator[str]:
    with running_simulator(studio, rate_limit=None) as url:
        yield url


def get(base: str, path: str, api: str, **params: Any) -> httpx.Response:
    return httpx.get(base + path, params=params, headers=api_headers(api), timeout=10)


def past(studio: Studio) -> list[dict[str, Any]]:
    return [
        a
        for a in studio.appointments.values()
        if not a["deleted"] and datetime.fromisoformat(a["endTime"]) <= NOW
    ]


# --- the generated world ---------------------------------------------------------------


def test_same_seed_same_world_different_seed_different_world(studio: Studio) -> None:
    again = generate_studio(LOCATION, clients=200, seed=7, now=NOW)
    other = generate_studio(LOCATION, clients=200, seed=8, now=NOW)
    assert again.truth() == studio.truth()
    assert other.truth()["contact"] != studio.truth()["contact"]


def test_outcomes_look_like_a_real_studio(studio: Studio) -> None:
    sessions = past(studio)
    mix = Counter(a["appointmentStatus"] for a in sessions)
    share = {status: n / len(sessions) for status, n in mix.items()}
    assert set(mix) == {"showed", "noshow", "cancelled"}
    assert share["showed"] > 0.7
    assert 0.02 < share["noshow"] < 0.15
    assert 0.03 < share["cancelled"] < 0.15
    cancelled = [a for a in sessions if a["appointmentStatus"] == "cancelled"]
    notice = [
        datetime.fromisoformat(a["startTime"]) - datetime.fromisoformat(a["dateUpdated"])
        for a in cancelled
    ]
    assert any(n < timedelta(hours=24) for n in notice), "late cancellations"
    assert any(n > timedelta(hours=24) for n in notice), "early cancellations"
    moved = [a for a in studio.appointments.values() if a.get("rescheduledFrom")]
    assert moved and all(a["dateUpdated"] > a["dateAdded"] for a in moved)
    future = [a for a in studio.appointments.values() if a["startTime"] > "2026-11-21"]
    assert {a["appointmentStatus"] for a in future} <= {"confirmed", "new"} and future


def test_times_are_local_with_dst_correct_offsets(studio: Studio) -> None:
    offsets = {a["startTime"][-6:] for a in studio.appointments.values()}
    assert offsets == {"-04:00", "-05:00"}  # New York, before and after 1 November
    for appointment in studio.appointments.values():
        start = datetime.fromisoformat(appointment["startTime"])
        assert start.minute == 0 and 6 <= start.hour <= 19  # same wall clock all year
        assert start.utcoffset() == timedelta(hours=-4 if start.month < 11 else -5)
    contact = next(iter(studio.contacts.values()))
    assert contact["dateAdded"].endswith("Z") and re.match(r".*\.\d{3}Z$", contact["dateAdded"])


def test_contacts_and_messages_have_the_edge_cases(studio: Studio) -> None:
    contacts = list(studio.contacts.values())
    assert all(GHL_ID.match(c["id"]) and c["phone"].startswith("+1") for c in contacts)
    assert 0 < sum(c["dnd"] for c in contacts) < len(contacts) * 0.2
    assert len({c["timezone"] for c in contacts}) > 1
    assert {c["assignedTo"] for c in contacts} <= set(studio.users)
    leads = {c["id"] for c in contacts if "lead" in c["tags"]}
    booked = {a["contactId"] for a in studio.appointments.values()}
    assert leads and not leads & booked
    inbound = [m for m in studio.messages.values() if m["direction"] == "inbound"]
    stopped = {m["contactId"] for m in inbound if m["body"] == "STOP"}
    assert stopped and all(studio.contacts[c]["dnd"] for c in stopped)
    assert {m["messageType"] for m in studio.messages.values()} == {"TYPE_SMS", "TYPE_EMAIL"}
    stages = {o["pipelineStageId"] for o in studio.opportunities.values()}
    assert len(stages) == 4


def test_at_risk_clients_drift_toward_no_shows(studio: Studio) -> None:
    recent = NOW - timedelta(days=28)
    missed: Counter[bool] = Counter()
    total: Counter[bool] = Counter()
    for appointment in past(studio):
        if datetime.fromisoformat(appointment["startTime"]) < recent:
            continue
        risky = studio.profiles[appointment["contactId"]].at_risk
        total[risky] += 1
        missed[risky] += appointment["appointmentStatus"] != "showed"
    assert missed[True] / total[True] > 2 * missed[False] / total[False]


def test_a_large_studio_has_every_client_once_with_ghl_ids() -> None:
    """How fast a 10,000-client studio generates is `make bench-simulator`'s to say."""
    big = generate_studio(LOCATION, clients=2_000, seed=1, now=NOW)
    assert len(big.contacts) == 2_000
    assert all(GHL_ID.match(contact_id) for contact_id in big.contacts)


# --- auth, versions, rate limits -------------------------------------------------------


def test_requests_need_a_known_bearer_token(sim: str) -> None:
    for headers in ({}, {"Authorization": "Bearer nope", "Version": "2021-07-28"}):
        answer = httpx.get(sim + "/contacts/", params={"locationId": LOCATION}, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["statusCode"] == 401 and answer.json()["traceId"]


def test_the_version_header_must_match_the_api(sim: str) -> None:
    answer = httpx.get(
        sim + "/contacts/",
        params={"locationId": LOCATION},
        headers={**api_headers("contacts"), "Version": "2021-04-15"},
    )
    assert answer.status_code == 400 and "2021-07-28" in answer.json()["message"]
    assert answer.headers["traceid"]


def test_a_token_reads_only_its_own_location(sim: str) -> None:
    assert get(sim, "/contacts/", "contacts", locationId="someone-else").status_code == 403
    assert get(sim, "/opportunities/search", "opportunities", location_id="x").status_code == 403
    assert get(sim, "/contacts/", "contacts").status_code == 422  # locationId is required


RATE_HEADERS = (
    "X-RateLimit-Max",
    "X-RateLimit-Remaining",
    "X-RateLimit-Interval-Milliseconds",
    "X-RateLimit-Limit-Daily",
    "X-RateLimit-Daily-Remaining",
)


def test_sliding_window_rate_limit_refuses_then_recovers(studio: Studio) -> None:
    with running_simulator(studio, rate_limit=RateLimit(5, 0.5, daily=1000)) as url:
        with httpx.Client(headers=api_headers("calendars")) as client:
            answers = [
                client.get(url + "/calendars/", params={"locationId": LOCATION}) for _ in range(7)
            ]
            assert [a.status_code for a in answers] == [200] * 5 + [429] * 2
            assert [a.headers["X-RateLimit-Remaining"] for a in answers[:5]] == list("43210")
            refused = answers[5]
            assert all(h in refused.headers for h in RATE_HEADERS)
            assert refused.json()["statusCode"] == 429
            assert refused.json()["message"] == "Too many requests"
            assert int(refused.headers["Retry-After"]) >= 1
            assert answers[0].headers["X-RateLimit-Daily-Remaining"] == "999"
            assert refused.headers["X-RateLimit-Daily-Remaining"] == "995"  # 429s are free
            time.sleep(0.55)
            assert client.get(url + "/calendars/", params={"locationId": LOCATION}).is_success
        stats = httpx.get(url + "/_sim/stats").json()
        assert stats["rateLimited"] == 2 and stats["byStatus"]["200"] == 6


def test_the_default_limit_refuses_the_101st_request_in_ten_seconds(studio: Studio) -> None:
    with running_simulator(studio) as url, httpx.Client(headers=api_headers("calendars")) as client:
        started = time.monotonic()
        codes = [
            client.get(url + "/calendars/", params={"locationId": LOCATION}).status_code
            for _ in range(101)
        ]
        assert time.monotonic() - started < 10
        assert codes == [200] * 100 + [429]


# --- paging ----------------------------------------------------------------------------


def walk(url: str, path: str, api: str, key: str, location_param: str, **hooks: Any) -> list[str]:
    """Follow meta.startAfter/startAfterId to the end; `between` runs after each page."""
    params: dict[str, Any] = {location_param: LOCATION, "limit": 37}
    seen: list[str] = []
    while True:
        page = get(url, path, api, **params).json()
        seen += [record["id"] for record in page[key]]
        meta = page["meta"]
        if "startAfterId" not in meta:
            assert not {"nextPageUrl", "startAfter", "nextPage"} & set(meta)
            return seen
        assert f"startAfterId={meta['startAfterId']}" in meta["nextPageUrl"]
        params.update(startAfter=meta["startAfter"], startAfterId=meta["startAfterId"])
        if "between" in hooks:
            hooks["between"]()


def test_keyset_paging_sees_every_record_once_despite_inserts() -> None:
    world = generate_studio(LOCATION, clients=150, seed=11, now=NOW)
    clock = iter(NOW + timedelta(minutes=n) for n in range(1, 1000))

    def insert() -> None:
        contact = world.add_contact(next(clock), firstName="New", lastName="Lead", name="New Lead")
        world.add_opportunity(contact["id"], next(clock))

    with running_simulator(world, rate_limit=None) as url:
        contacts = walk(url, "/contacts/", "contacts", "contacts", "locationId", between=insert)
        live_contacts = {c["id"] for c in world.contacts.values() if not c["deleted"]}
        opportunities = walk(
            url, "/opportunities/search", "opportunities", "opportunities", "location_id",
            between=insert,
        )  # fmt: skip
    assert len(contacts) == len(set(contacts))
    assert set(contacts) == live_contacts
    assert len(opportunities) == len(set(opportunities))
    assert set(opportunities) == set(world.opportunities)


def test_events_are_the_calendar_window_without_paging(sim: str, studio: Studio) -> None:
    calendar_id, user_id = next(
        (c["id"], c["teamMembers"][0]["userId"]) for c in studio.calendars.values()
    )
    start, end = epoch_ms(NOW - timedelta(days=30)), epoch_ms(NOW + timedelta(days=7))
    expected = {
        a["id"]
        for a in studio.appointments.values()
        if a["calendarId"] == calendar_id
        and not a["deleted"]
        and start <= epoch_ms(a["startTime"]) < end
    }
    for owner in ({"calendarId": calendar_id}, {"userId": user_id}):
        answer = get(sim, "/calendars/events", "calendars", locationId=LOCATION,
                     startTime=start, endTime=end, **owner)  # fmt: skip
        assert {e["id"] for e in answer.json()["events"]} == expected
    one = next(iter(expected))
    event = get(sim, f"/calendars/events/appointments/{one}", "calendars").json()["event"]
    assert event == {k: v for k, v in studio.appointments[one].items() if k != "deleted"}
    bad = [
        {"startTime": start, "endTime": end},
        {"calendarId": calendar_id, "startTime": start},
        {"calendarId": calendar_id, "startTime": "yesterday", "endTime": end},
        {"calendarId": calendar_id, "startTime": end, "endTime": start},
    ]
    for params in bad:
        assert get(sim, "/calendars/events", "calendars", locationId=LOCATION,
                   **params).status_code == 400  # fmt: skip
    assert get(sim, "/calendars/events/appointments/nope", "calendars").status_code == 400


def export(url: str, **params: Any) -> tuple[list[dict[str, Any]], int]:
    messages: list[dict[str, Any]] = []
    query: dict[str, Any] = {"locationId": LOCATION, "limit": 50, **params}
    while True:
        page = get(url, "/conversations/messages/export", "conversations", **query).json()
        messages += page["messages"]
        if "nextCursor" not in page:
            return messages, page["total"]
        query["cursor"] = page["nextCursor"]


def test_message_export_cursor_pages_in_order(sim: str, studio: Studio) -> None:
    sms = {m["id"] for m in studio.messages.values() if m["messageType"] == "TYPE_SMS"}
    ascending, total = export(sim, sortBy="updatedAt", sortOrder="asc")
    ids = [m["id"] for m in ascending]
    assert len(ids) == len(set(ids)) == total and set(ids) == sms  # no channel: no emails
    keys = [(m["dateUpdated"], m["id"]) for m in ascending]
    assert keys == sorted(keys)
    descending, _ = export(sim)
    assert [m["id"] for m in descending] == sorted(
        sms, key=lambda i: (studio.messages[i]["dateAdded"], i), reverse=True
    )
    emails, _ = export(sim, channel="Email")
    assert {m["messageType"] for m in emails} == {"TYPE_EMAIL"}
    since = NOW - timedelta(days=10)
    by_iso, _ = export(sim, startDate=since.isoformat(), sortBy="updatedAt")
    by_ms, _ = export(sim, startDate=epoch_ms(since), sortBy="updatedAt")
    assert by_iso == by_ms and {m["dateUpdated"] >= "2026-11-10T15" for m in by_iso} == {True}
    assert get(sim, "/conversations/messages/export", "conversations", locationId=LOCATION,
               cursor="not-a-cursor").status_code == 400  # fmt: skip
    assert get(sim, "/conversations/messages/export", "conversations", locationId=LOCATION,
               limit=1000).status_code == 400  # fmt: skip


def test_injected_faults_answer_then_clear(studio: Studio) -> None:
    with running_simulator(studio, rate_limit=None) as url:
        httpx.post(
            url + "/_sim/faults", json={"status": 502, "count": 3, "path_prefix": "/contacts"}
        )
        codes = [
            get(url, "/contacts/", "contacts", locationId=LOCATION).status_code for _ in range(4)
        ]
        assert codes == [502, 502, 502, 200]
        assert get(url, "/calendars/", "calendars", locationId=LOCATION).status_code == 200
        stats = httpx.get(url + "/_sim/stats").json()
        assert stats["byRoute"]["GET /contacts/"] == {"502": 3, "200": 1}
        assert stats["failed"] == 3 and stats["rateLimited"] == 0
        truth = httpx.get(url + "/_sim/truth").json()
        assert truth["counts"]["contact"] == len(studio.contacts)


def test_send_message_records_it_and_respects_dnd() -> None:
    world = generate_studio(LOCATION, clients=40, seed=5, now=NOW)
    reachable = next(c for c in world.contacts.values() if not c["dnd"])
    blocked = next(c for c in world.contacts.values() if c["dnd"])
    send = {"Authorization": f"Bearer {SIM_TOKEN}", "Version": "2021-04-15"}
    with running_simulator(world, rate_limit=None) as url:

        def post(body: dict[str, Any]) -> httpx.Response:
            return httpx.post(url + "/conversations/messages", json=body, headers=send)

        sent = post({"type": "SMS", "contactId": reachable["id"], "message": "See you at 7!"})
        assert sent.status_code == 200
        reply = sent.json()
        assert reply["msg"] == "Message queued successfully." and reply["messageId"]
        exported, _ = export(url, contactId=reachable["id"])
        assert reply["messageId"] in {m["id"] for m in exported}
        assert world.changes[-1].event_type == "OutboundMessage"
        email = post({"type": "Email", "contactId": reachable["id"], "html": "<p>Hi</p>",
                      "subject": "Plan"})  # fmt: skip
        assert email.status_code == 200
        refused = post({"type": "SMS", "contactId": blocked["id"], "message": "hi"})
        assert refused.status_code == 400 and "DND" in refused.json()["message"]
        assert post({"type": "SMS", "contactId": "nope", "message": "hi"}).status_code == 400
        assert post({"type": "SMS", "contactId": reachable["id"]}).status_code == 400
        assert (
            post({"type": "Fax", "contactId": reachable["id"], "message": "hi"}).status_code == 400
        )


def test_contact_by_id_and_deleted_contacts(sim: str, studio: Studio) -> None:
    contact = next(iter(studio.contacts.values()))
    found = get(sim, f"/contacts/{contact['id']}", "contacts").json()["contact"]
    assert found["id"] == contact["id"] and "deleted" not in found
    missing = get(sim, "/contacts/nope", "contacts")
    assert missing.status_code == 400 and missing.json()["message"] == "Contact not found"


def test_a_kept_studio_resumes_the_same_world_where_it_stopped(tmp_path: Path) -> None:
    """`ghl-simulator --keep` (the stack's): a restart resumes the world, as GHL would
    have it, instead of generating another beside what TrainU already holds."""
    params = {"location_id": LOCATION, "trainers": 2, "clients": 40, "days": 30, "seed": 3}
    keeper = StudioKeeper(tmp_path / "sim.studio", params)
    assert keeper.load() is None  # nothing kept yet: the simulator generates
    studio = generate_studio(LOCATION, trainers=2, clients=40, days=30, seed=3, now=NOW)
    live = random.Random(5)
    studio.advance(live, NOW + timedelta(hours=6), events=40)
    keeper.save(studio)

    resumed = keeper.load()
    assert resumed is not None and resumed.now == studio.now
    assert resumed.truth() == studio.truth()
    # it goes on from there: new records get new ids, and both copies still agree
    made = resumed.advance(live, NOW + timedelta(hours=12), events=40)
    assert made and not {c.entity_id for c in made if c.kind == "create"} & set(
        id for records in studio.truth().values() for id in records
    )
    with resumed.lock:  # its lock is a new one, and works
        assert resumed.summary()["counts"]["contact"] >= 40

    other = StudioKeeper(tmp_path / "sim.studio", params | {"seed": 4})
    assert other.load() is None  # kept for another studio: generated anew
    (tmp_path / "sim.studio").write_bytes(b"not a studio")
    assert keeper.load() is None  # unreadable: generated anew, never a crash


def test_a_stopped_simulator_keeps_its_studio_and_a_restart_resumes_it(tmp_path: Path) -> None:
    """The stack stops the simulator with SIGTERM: it saves the studio on the way out (not
    only every minute), so `make up` after a short first run resumes the same world."""
    env = {**os.environ, "TRAINU_STATE_DIR": str(tmp_path), "TRAINU_GHL_TOKEN": SIM_TOKEN}
    kept = tmp_path / "simulator" / f"{LOCATION}.studio"

    def run_once() -> str:
        port = free_port()
        log = tmp_path / f"simulate-{port}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [GHL_SIMULATOR, "--keep", "--location", LOCATION, "--trainers", "2",
                 "--clients", "20", "--days", "14", "--port", str(port)],
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
            try:
                deadline = time.monotonic() + 60
                while proc.poll() is None and time.monotonic() < deadline:
                    try:
                        get(f"http://127.0.0.1:{port}", "/contacts/", "contacts",
                            locationId=LOCATION)  # fmt: skip
                        break
                    except httpx.TransportError:
                        time.sleep(0.2)
                proc.send_signal(signal.SIGTERM)
                assert proc.wait(timeout=30) == 0, log.read_text()
            finally:
                proc.kill()
        return log.read_text()

    first = run_once()
    assert "simulator_generated" in first and "simulator_stopped" in first, first
    assert kept.exists()  # saved on stop, seconds after start: no minute has passed
    second = run_once()
    assert "simulator_resumed" in second and "simulator_generated" not in second, second
