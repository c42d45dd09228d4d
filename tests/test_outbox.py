"""The outbox against the GHL simulator over HTTP and the real database: approved messages
go out once with exactly the approved text, within the rules, whatever GHL answers and
wherever the sending process dies."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunRequest, SkipReason, build_sensor_context
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from ghl_simulator import generate_studio
from ghl_simulator.studio import Studio
from sensors.outbox import outbox_sensor
from tests.cli_harness import run as trainu
from tests.ghl_simulator_harness import SIM_TOKEN, PerStudio, running_simulator
from tests.job_harness import send_job
from trainu_dagster import accounts
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.budget import RequestBudget
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.inbox import decisions
from trainu_dagster.jobs import send_messages
from trainu_dagster.messaging import outbox
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import PROJECT_ROOT

LOCATION = "loc-outbox"
EXPIRY, LEASE = timedelta(hours=48), timedelta(minutes=5)
UNLIMITED = RequestBudget(requests=1_000_000, window=1.0)
ZONES = ["Pacific/Honolulu", "America/Los_Angeles", "America/New_York", "Europe/London",
         "Asia/Dubai", "Asia/Kolkata", "Asia/Tokyo", "Australia/Sydney"]  # fmt: skip


def zone_where(hours: range | list[int]) -> str:
    """A timezone whose local hour now is in `hours` (the tests run at any time of day)."""
    now = datetime.now(UTC)
    return next(z for z in ZONES if now.astimezone(ZoneInfo(z)).hour in hours)


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, trainers=2, clients=200, days=20, seed=11)


@pytest.fixture(scope="module")
def sim_url(studio: Studio) -> Iterator[str]:
    with running_simulator(studio, rate_limit=None) as url:
        yield url


def in_trainu(conn: psycopg.Connection, studio: Studio, name: str) -> dict[str, UUID]:
    """The studio's location in TrainU (no burst brake: the tests send hundreds in seconds;
    its own test sets it) and a client for each reachable contact: contact id → client id."""
    conn.execute(
        """INSERT INTO app.locations (location_id, name, timezone, burst_limit,
               max_messages_per_day, max_messages_per_week)
           VALUES (%s, %s, %s, 100000, 20, 50)""",
        (studio.location_id, name, zone_where(range(10, 18))),
    )
    return {
        c["id"]: conn.execute(
            """INSERT INTO app.clients (location_id, ghl_contact_id, name, phone)
               VALUES (%s, %s, %s, %s) RETURNING id""",
            (studio.location_id, c["id"], c.get("name") or "Client", c["phone"]),
        ).fetchone()[0]
        for c in studio.contacts.values()
        if not c["deleted"] and c.get("phone") and not c["dnd"]
    }


@pytest.fixture(scope="module")
def world(database: Database, studio: Studio) -> dict[str, Any]:
    """The studio in TrainU: its owner, and a client for each reachable contact."""
    with database.connect() as conn:
        clients = in_trainu(conn, studio, "Outbox Gym")
        owner = accounts.create_user(conn, location_id=LOCATION, email="owner@outbox.example",
                                     password="a long enough password", role="owner",
                                     display_name="Owner")  # fmt: skip
    return {"owner": owner, "clients": clients, "contacts": list(clients)}


@pytest.fixture
def fresh(database: Database, world: dict[str, Any]) -> dict[str, Any]:
    """Every test starts with nothing approved, the studio sending, default rules (but no
    burst brake: the tests send hundreds in seconds; its own test sets it)."""
    with database.connect() as conn:
        conn.execute(
            """UPDATE app.messages SET status = 'suppressed', suppressed_reason = 'test reset',
                   claimed_at = NULL, claimed_by = NULL
               WHERE status IN ('approved', 'queued')"""
        )
        conn.execute(
            """UPDATE app.locations SET sending_paused_at = NULL, sending_paused_by = NULL,
                   sending_paused_reason = NULL, burst_limit = 100000, max_messages_per_day = 20,
                   max_messages_per_week = 50, quiet_hours_start = '08:00',
                   quiet_hours_end = '21:00', timezone = %s
               WHERE location_id = %s""",
            (zone_where(range(10, 18)), LOCATION),
        )
        conn.execute("UPDATE app.clients SET opted_out_at = NULL, opt_out_reason = NULL")
    outbox.checkpoint = lambda step, message_id: None
    return world


_texts = iter(range(1_000_000))


def approve(
    database: Database,
    world: dict[str, Any],
    contact: str,
    *,
    status: str = "approved",
    purpose: str = "re_engagement",
    text: str | None = None,
    approved_at: datetime | None = None,
) -> tuple[UUID, str]:
    """A message as the inbox leaves it (approved: by the owner, with that exact text)."""
    text = text or f"Hi, we'd love to see you back this week! (#{next(_texts)})"
    approved = status in ("approved", "sent")
    with database.connect() as conn:
        message_id = conn.execute(
            """INSERT INTO app.messages (location_id, client_id, direction, channel, status,
                   body, draft_body, generator, purpose, approved_body, approved_by,
                   approved_at, rejected_reason, trigger)
               VALUES (%s, %s, 'outbound', 'SMS', %s, %s, %s, 'template', %s, %s, %s, %s, %s, %s)
               RETURNING id""",
            (LOCATION, world["clients"][contact], status, text, text, purpose,
             text if approved else None, world["owner"].id if approved else None,
             (approved_at or datetime.now(UTC)) if approved else None,
             "no" if status == "rejected" else None, Jsonb({})),
        ).fetchone()[0]  # fmt: skip
    return message_id, text


@contextmanager
def ghl(url: str, **options: Any) -> Iterator[GhlClient]:
    with GhlClient(SIM_TOKEN, base_url=url, budget=UNLIMITED, **options) as client:
        yield client


def drain(database: Database, url: str, *, clock=None, lease=LEASE, **options: Any):  # noqa: ANN001, ANN201
    with database.connect(autocommit=True) as conn, ghl(url, **options) as client:
        return outbox.drain(conn, client, run_id="test-run", cap=500, approval_expiry=EXPIRY,
                            lease=lease, clock=clock or (lambda: datetime.now(UTC)))  # fmt: skip


def row(database: Database, message_id: UUID) -> dict[str, Any]:
    with database.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
        return cur.execute("SELECT * FROM app.messages WHERE id = %s", (message_id,)).fetchone()


def in_ghl(studio: Studio, text: str) -> list[dict[str, Any]]:
    """The simulator's outbound messages with exactly this text."""
    with studio.lock:
        return [m for m in studio.messages.values()
                if m["direction"] == "outbound" and m["body"] == text]  # fmt: skip


def events(database: Database, message_id: UUID) -> list[str]:
    with database.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT event_type FROM app.events WHERE entity_id = %s ORDER BY id",
            (str(message_id),),
        )]  # fmt: skip


def fault(url: str, status: int, *, count: int = 1, after: bool = False, delay: float = 0) -> None:
    httpx.post(f"{url}/_sim/faults", json={
        "status": status, "count": count, "path_prefix": "/conversations/messages",
        "after": after, "delay_seconds": delay,
    }).raise_for_status()  # fmt: skip


# --- what is sent --------------------------------------------------------------------------


def test_approved_messages_go_once_with_the_approved_text_and_nothing_else_goes(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    contacts = fresh["contacts"]
    approved = [approve(database, fresh, c) for c in contacts[:3]]
    others = [approve(database, fresh, contacts[3], status=s, purpose=p)
              for s, p in (("pending_approval", "reminder"), ("rejected", "milestone"),
                           ("suppressed", "confirmation"), ("escalated", "reply"),
                           ("needs_manual", "re_engagement"))]  # fmt: skip
    report = drain(database, sim_url)
    assert report.sent == 3
    for message_id, text in approved:
        [sent] = in_ghl(studio, text)
        stored = row(database, message_id)
        assert (stored["status"], stored["ghl_message_id"]) == ("sent", sent["id"])
        assert stored["ghl_conversation_id"] == sent["conversationId"]
        assert events(database, message_id) == ["message_queued", "message_sent"]
    for message_id, text in others:
        assert in_ghl(studio, text) == []
        assert row(database, message_id)["sent_at"] is None
    assert drain(database, sim_url).sent == 0  # again: nothing twice
    assert all(len(in_ghl(studio, text)) == 1 for _, text in approved)


def test_outside_the_clients_window_it_waits_then_goes_at_8(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    late = zone_where([22, 23, 0, 1, 2, 3, 4, 5])  # some zone is always there: 8 hours wide
    with database.connect() as conn:
        conn.execute("UPDATE app.locations SET timezone = %s WHERE location_id = %s",
                     (late, LOCATION))  # fmt: skip
    message_id, text = approve(database, fresh, fresh["contacts"][0])
    assert drain(database, sim_url).held == 1
    held = row(database, message_id)
    assert (held["status"], held["held_reason"]) == ("approved", "quiet hours")
    opens = held["held_until"].astimezone(ZoneInfo(late))
    assert (opens.hour, opens.minute) == (8, 0) and opens > datetime.now(UTC)
    assert in_ghl(studio, text) == []
    assert drain(database, sim_url).held == 0  # not looked at again before its time
    at_eight = held["held_until"] + timedelta(minutes=1)
    assert drain(database, sim_url, clock=lambda: at_eight).sent == 1
    assert len(in_ghl(studio, text)) == 1


def test_the_frequency_cap_holds_the_second_message_of_the_day(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    with database.connect() as conn:
        conn.execute("UPDATE app.locations SET max_messages_per_day = 1 WHERE location_id = %s",
                     (LOCATION,))  # fmt: skip
    contact = fresh["contacts"][4]
    first, text = approve(database, fresh, contact)
    second, later = approve(database, fresh, contact, purpose="milestone")
    report = drain(database, sim_url)
    assert (report.sent, report.held) == (1, 1)
    assert row(database, first)["status"] == "sent" and len(in_ghl(studio, text)) == 1
    held = row(database, second)
    assert (held["status"], held["held_reason"]) == ("approved", "frequency cap")
    assert held["held_until"] >= row(database, first)["sent_at"] + timedelta(hours=23)
    assert in_ghl(studio, later) == []


@pytest.mark.parametrize("how", ["stop_reply", "ghl_dnd", "dnd_on_sms"])
def test_an_opted_out_client_is_suppressed_never_sent(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any], how: str
) -> None:
    contact = fresh["contacts"][5]
    with database.connect() as conn:
        conn.execute("DELETE FROM raw.ghl_contacts WHERE contact_id = %s", (contact,))
        if how == "stop_reply":
            conn.execute("UPDATE app.clients SET opted_out_at = now(), opt_out_reason = "
                         "'STOP reply' WHERE ghl_contact_id = %s", (contact,))  # fmt: skip
        else:
            payload = {"dndSettings": {"SMS": {"status": "active"}}} if how == "dnd_on_sms" else {}
            conn.execute(
                """INSERT INTO raw.ghl_contacts (location_id, contact_id, dnd,
                       source_updated_at, payload, source)
                   VALUES (%s, %s, %s, now(), %s, 'webhook')""",
                (LOCATION, contact, how == "ghl_dnd", Jsonb(payload)),
            )
    message_id, text = approve(database, fresh, contact)
    assert drain(database, sim_url).suppressed == 1
    stored = row(database, message_id)
    assert stored["status"] == "suppressed"
    expected = {"stop_reply": "STOP reply", "ghl_dnd": "GHL DND", "dnd_on_sms": "GHL DND on SMS"}
    assert stored["suppressed_reason"] == expected[how]
    assert in_ghl(studio, text) == []
    assert events(database, message_id) == ["message_suppressed"]
    with database.connect() as conn:
        conn.execute("DELETE FROM raw.ghl_contacts WHERE contact_id = %s", (contact,))


def test_an_opt_out_in_the_clients_own_words_is_confirmed_once_and_nothing_else_goes(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    own_words, ghl_stop = fresh["contacts"][6], fresh["contacts"][7]
    with database.connect() as conn:
        conn.execute("DELETE FROM raw.ghl_contacts WHERE contact_id = ANY(%s)",
                     ([own_words, ghl_stop],))  # fmt: skip
        conn.execute("UPDATE app.clients SET opted_out_at = now() - interval '1 minute', "
                     "opt_out_reason = 'STOP reply' WHERE ghl_contact_id = ANY(%s)",
                     ([own_words, ghl_stop],))  # fmt: skip
        conn.execute(  # GHL acted on the plain STOP: DND on, and GHL confirmed it itself
            """INSERT INTO raw.ghl_contacts (location_id, contact_id, dnd, source_updated_at,
                   payload, source) VALUES (%s, %s, true, now(), '{}', 'webhook')""",
            (LOCATION, ghl_stop),
        )
    confirm = "You're unsubscribed from Outbox Gym messages and won't hear from us again."
    first = approve(database, fresh, own_words, purpose="opt_out_confirmation", text=confirm)
    twice = approve(database, fresh, own_words, purpose="opt_out_confirmation",
                    text=confirm + " Bye!")  # fmt: skip
    later = approve(database, fresh, own_words)
    theirs = approve(database, fresh, ghl_stop, purpose="opt_out_confirmation",
                     text=confirm + " (GHL)")  # fmt: skip
    drain(database, sim_url)
    outcome = {name: (row(database, m)["status"], row(database, m)["suppressed_reason"])
               for name, (m, _) in {"first": first, "twice": twice, "later": later,
                                    "theirs": theirs}.items()}  # fmt: skip
    not_due = "opt-out confirmation not due (already sent, or GHL's own)"
    assert outcome == {"first": ("sent", None), "twice": ("suppressed", not_due),
                       "later": ("suppressed", "STOP reply"),
                       "theirs": ("suppressed", not_due)}  # fmt: skip
    assert len(in_ghl(studio, confirm)) == 1
    assert [in_ghl(studio, text) for _, text in (twice, later, theirs)] == [[], [], []]
    # a confirmation approved after the first was sent is not due either
    again = approve(database, fresh, own_words, purpose="opt_out_confirmation",
                    text=confirm + " Again")  # fmt: skip
    drain(database, sim_url)
    assert row(database, again[0])["status"] == "suppressed"
    with database.connect() as conn:
        conn.execute("DELETE FROM raw.ghl_contacts WHERE contact_id = %s", (ghl_stop,))


def test_a_stop_that_lands_while_the_message_is_claimed_stops_it(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    contact = fresh["contacts"][6]
    message_id, text = approve(database, fresh, contact)

    def stop_arrives(step: str, claimed: UUID) -> None:
        if step == "claimed":
            with database.connect() as conn:
                conn.execute("UPDATE app.clients SET opted_out_at = now(), opt_out_reason = "
                             "'STOP reply' WHERE ghl_contact_id = %s", (contact,))  # fmt: skip

    outbox.checkpoint = stop_arrives
    assert drain(database, sim_url).suppressed == 1
    assert row(database, message_id)["status"] == "suppressed"
    assert in_ghl(studio, text) == []


def test_the_kill_switch_stops_the_rest_of_a_run_at_once(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    messages = [approve(database, fresh, c) for c in fresh["contacts"][7:12]]

    def owner_pauses(step: str, claimed: UUID) -> None:
        if step == "recorded":
            with database.connect() as conn:
                conn.execute("UPDATE app.locations SET sending_paused_at = now(), "
                             "sending_paused_by = %s WHERE location_id = %s",
                             (fresh["owner"].id, LOCATION))  # fmt: skip

    outbox.checkpoint = owner_pauses
    report = drain(database, sim_url)
    assert report.sent == 1 and report.released == 4
    statuses = [row(database, m)["status"] for m, _ in messages]
    assert statuses.count("sent") == 1 and statuses.count("approved") == 4
    assert sum(len(in_ghl(studio, text)) for _, text in messages) == 1
    outbox.checkpoint = lambda step, message_id: None
    assert drain(database, sim_url).sent == 0  # paused: nothing more


def test_a_burst_beyond_the_studios_limit_pauses_sending_and_raises_a_sev1(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    with database.connect() as conn:
        sent_recently = conn.execute(
            "SELECT count(*) FROM app.messages WHERE location_id = %s AND sent_at > now() - "
            "interval '10 minutes' AND direction = 'outbound'", (LOCATION,),
        ).fetchone()[0]  # fmt: skip
        conn.execute("UPDATE app.locations SET burst_limit = %s WHERE location_id = %s",
                     (sent_recently + 4, LOCATION))  # fmt: skip
        for contact in fresh["contacts"][40:45]:  # clients' replies just now are not sends
            conn.execute(
                """INSERT INTO app.messages (location_id, client_id, direction, channel, status,
                       body, sent_at)
                   VALUES (%s, %s, 'inbound', 'SMS', 'received', 'Sure!', now())""",
                (LOCATION, fresh["clients"][contact]),
            )
    first = [approve(database, fresh, c) for c in fresh["contacts"][12:16]]
    assert drain(database, sim_url).sent == 4  # up to the limit
    messages = [approve(database, fresh, c) for c in fresh["contacts"][16:20]]
    report = drain(database, sim_url)
    # beyond it: nothing more goes, the rest wait, approved, for a person
    assert report.sent == 0 and report.paused == [LOCATION]
    assert [len(in_ghl(studio, text)) for _, text in first] == [1] * 4
    assert sum(len(in_ghl(studio, text)) for _, text in messages) == 0
    statuses = [row(database, m)["status"] for m, _ in messages]
    assert statuses.count("approved") == len(messages) - report.sent
    with database.connect() as conn:
        paused, reason = conn.execute(
            "SELECT sending_paused_at, sending_paused_reason FROM app.locations "
            "WHERE location_id = %s", (LOCATION,),
        ).fetchone()  # fmt: skip
        sev1 = conn.execute(
            "SELECT properties FROM app.events WHERE event_type = 'sending_paused' "
            "AND location_id = %s ORDER BY id DESC LIMIT 1", (LOCATION,),
        ).fetchone()[0]  # fmt: skip
    assert paused is not None and reason.startswith("burst brake")
    assert sev1["severity"] == "SEV1"


def test_an_approval_past_its_expiry_goes_back_to_the_inbox(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    old = datetime.now(UTC) - EXPIRY - timedelta(hours=1)
    message_id, text = approve(database, fresh, fresh["contacts"][18], approved_at=old)
    assert drain(database, sim_url).stale == 1
    stored = row(database, message_id)
    assert (stored["status"], stored["approved_by"], stored["approved_body"]) == (
        "pending_approval", None, None,
    )  # fmt: skip
    assert in_ghl(studio, text) == []


# --- what GHL answers --------------------------------------------------------------------


def test_a_429_is_retried_later_and_sent_once(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    message_id, text = approve(database, fresh, fresh["contacts"][19])
    fault(sim_url, 429)
    assert drain(database, sim_url, max_attempts=1).retrying == 1
    waiting = row(database, message_id)
    assert waiting["status"] == "approved" and waiting["held_until"] > datetime.now(UTC)
    assert in_ghl(studio, text) == []
    later = waiting["held_until"] + timedelta(seconds=1)
    assert drain(database, sim_url, clock=lambda: later).sent == 1
    assert len(in_ghl(studio, text)) == 1


@pytest.mark.parametrize(
    ("status", "after", "delay"),
    [(502, False, 0), (500, True, 0), (200, True, 3.0)],
    ids=["5xx-not-sent", "5xx-after-sending", "timeout-after-sending"],
)
def test_an_ambiguous_answer_is_looked_up_in_ghl_never_resent_blind(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any],
    status: int, after: bool, delay: float,
) -> None:  # fmt: skip
    message_id, text = approve(database, fresh, fresh["contacts"][20])
    fault(sim_url, status, after=after, delay=delay)
    report = drain(database, sim_url, timeout=1.0)
    stored = row(database, message_id)
    if after:  # GHL sent it: found in the conversation, recorded as sent
        assert (report.sent, report.reconciled, stored["status"]) == (1, 1, "sent")
        assert stored["ghl_message_id"] == in_ghl(studio, text)[0]["id"]
    else:  # GHL did not: due again after a backoff
        assert (report.retrying, stored["status"]) == (1, "approved")
        later = stored["held_until"] + timedelta(seconds=1)
        assert drain(database, sim_url, clock=lambda: later).sent == 1
    assert len(in_ghl(studio, text)) == 1


def test_a_contact_with_dnd_in_ghl_fails_with_ghls_reason(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    contact = fresh["contacts"][21]
    with studio.lock:
        studio.contacts[contact]["dnd"] = True  # set in GHL; TrainU has not heard yet
    try:
        message_id, text = approve(database, fresh, contact)
        assert drain(database, sim_url).failed == 1
        stored = row(database, message_id)
        assert stored["status"] == "failed"
        assert stored["failed_reason"].startswith("GHL 400: Cannot send message as DND is active")
        assert events(database, message_id)[-1] == "message_failed"
    finally:
        with studio.lock:
            studio.contacts[contact]["dnd"] = False


# --- crashes -------------------------------------------------------------------------------


class Crash(Exception):
    pass


STEPS = ("claimed", "sending", "sent_unrecorded", "recorded")


def crash_at(step: str, victims: set[UUID] | None = None):  # noqa: ANN201
    def check(at: str, message_id: UUID) -> None:
        if at == step and (victims is None or message_id in victims):
            raise Crash(step)

    return check


@pytest.mark.parametrize("step", STEPS)
def test_a_run_dying_at_any_step_neither_doubles_nor_loses_the_message(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any], step: str
) -> None:
    message_id, text = approve(database, fresh, fresh["contacts"][22])
    outbox.checkpoint = crash_at(step)
    with pytest.raises(Crash):
        drain(database, sim_url)
    outbox.checkpoint = lambda s, m: None
    reconciled_once_after_the_lease(database, studio, sim_url, message_id, text, step)


def reconciled_once_after_the_lease(
    database: Database, studio: Studio, sim_url: str, message_id: UUID, text: str, step: str
) -> None:
    """After a run died at `step`: a new run before the lease is over leaves the claim
    alone, and one after it reconciles with GHL: sent exactly once, whatever the step."""
    drain(database, sim_url)
    assert (row(database, message_id)["status"] == "queued") == (step != "recorded")
    after_lease = datetime.now(UTC) + LEASE + timedelta(seconds=1)
    drain(database, sim_url, clock=lambda: after_lease)
    assert row(database, message_id)["status"] == "sent"
    assert len(in_ghl(studio, text)) == 1


def test_a_hundred_randomised_crashes_send_every_approved_message_exactly_once(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    rng = random.Random(2026)
    contacts = fresh["contacts"][30:]
    approved: dict[UUID, str] = {}
    for run in range(100):
        batch = [approve(database, fresh, c, text=f"Run {run}: see you soon! ({c})")
                 for c in rng.sample(contacts, 3)]  # fmt: skip
        approved.update(batch)
        victims = {m for m, _ in batch if rng.random() < 0.7}
        outbox.checkpoint = crash_at(rng.choice(STEPS), victims)
        # each run starts after the previous one died: its claims are past their lease
        with pytest.raises(Crash) if victims else _nothing():
            drain(database, sim_url, lease=timedelta(0))
        outbox.checkpoint = lambda s, m: None
    drain(database, sim_url, lease=timedelta(0))  # the last crash, reconciled
    each_sent_once(database, studio, approved)


def each_sent_once(database: Database, studio: Studio, approved: dict[UUID, str]) -> None:
    """Every approved message sent, and in GHL exactly once with its text."""
    with database.connect() as conn:
        statuses = dict(conn.execute(
            "SELECT id, status FROM app.messages WHERE id = ANY(%s)", (list(approved),),
        ).fetchall())  # fmt: skip
    assert set(statuses.values()) == {"sent"}
    assert [len(in_ghl(studio, text)) for text in approved.values()] == [1] * len(approved)


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def killed_run(database: Database, sim_url: str, step: str, nth: int = 1,
               lease: timedelta = LEASE) -> int:  # fmt: skip
    """A send run in its own process, SIGKILLed the `nth` time a message reaches `step`;
    its exit code (-9 if it was killed)."""
    return subprocess.run(
        [sys.executable, "-m", "tests.killed_send_run", database.url(), sim_url, step,
         str(nth), str(lease.total_seconds())],
        cwd=PROJECT_ROOT, capture_output=True, timeout=120, check=False,
    ).returncode  # fmt: skip


@pytest.mark.parametrize("step", STEPS)
def test_a_send_process_killed_at_any_step_neither_doubles_nor_loses_the_message(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any], step: str
) -> None:
    message_id, text = approve(database, fresh, fresh["contacts"][23])
    assert killed_run(database, sim_url, step) == -signal.SIGKILL
    reconciled_once_after_the_lease(database, studio, sim_url, message_id, text, step)


def test_send_processes_killed_at_random_steps_send_every_message_exactly_once(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    rng = random.Random(1203)
    contacts = fresh["contacts"][130:]
    approved: dict[UUID, str] = {}
    killed = 0
    for run in range(20):
        approved.update(approve(database, fresh, c, text=f"Killed run {run}: see you! ({c})")
                        for c in rng.sample(contacts, 3))  # fmt: skip
        # each run starts after the previous one died: its claims are past their lease
        code = killed_run(database, sim_url, rng.choice(STEPS), rng.randint(1, 4), timedelta(0))
        killed += code == -signal.SIGKILL
        assert code in (0, -signal.SIGKILL)
    drain(database, sim_url, lease=timedelta(0))  # the last one's claims, reconciled
    assert killed >= 10  # most runs died somewhere (the rest had fewer messages than `nth`)
    each_sent_once(database, studio, approved)


def test_the_claim_is_exclusive_between_concurrent_runs(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    messages = [approve(database, fresh, c) for c in fresh["contacts"][:6]]
    with database.connect() as first, database.connect() as second:
        mine, _ = outbox.claim(first, run_id="a", now=datetime.now(UTC), limit=3,
                               approval_expiry=EXPIRY)  # fmt: skip
        theirs, _ = outbox.claim(second, run_id="b", now=datetime.now(UTC), limit=10,
                                 approval_expiry=EXPIRY)  # fmt: skip
        first.commit()
        second.commit()
    assert len(mine) == 3 and len(theirs) == 3
    assert not {c.id for c in mine} & {c.id for c in theirs}
    assert {c.id for c in mine} | {c.id for c in theirs} == {m for m, _ in messages}


def no_drafts_waiting(database: Database) -> None:
    with database.connect() as conn:
        conn.execute(
            """UPDATE app.messages SET status = 'rejected', rejected_reason = 'test reset'
               WHERE status IN ('pending_approval', 'needs_manual')"""
        )


def test_the_outbox_sensor_keeps_one_send_run_ready_while_approvals_may_come(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    no_drafts_waiting(database)
    resources = {"database": PostgresResource(database_url=database.url())}
    with DagsterInstance.ephemeral() as instance:

        def tick() -> RunRequest | SkipReason:
            return outbox_sensor(build_sensor_context(instance=instance, resources=resources))

        assert isinstance(tick(), SkipReason)
        draft, _ = approve(database, fresh, fresh["contacts"][0], status="pending_approval")
        assert isinstance(tick(), RunRequest)  # a trainer may approve it any moment
        waiting = instance.create_run_for_job(send_messages, status=DagsterRunStatus.NOT_STARTED)
        skip = tick()
        assert isinstance(skip, SkipReason) and "already waiting" in skip.skip_message
        instance.delete_run(waiting.run_id)

        message_id, text = approve(database, fresh, fresh["contacts"][1])
        assert isinstance(tick(), RunRequest)
        assert send_job(database, sim_url, instance).success
        no_drafts_waiting(database)
        assert isinstance(tick(), SkipReason)  # nothing due, no draft waiting: no sender
    assert row(database, message_id)["status"] == "sent"
    assert row(database, draft)["status"] == "rejected"
    assert len(in_ghl(studio, text)) == 1


def test_a_waiting_send_run_sends_an_approval_as_soon_as_it_is_committed(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    """The run is woken by the approval's notification, not by its poll (60 s here), and
    ends on its own once no draft is left to decide."""
    no_drafts_waiting(database)
    text = "Good to see you last month! Shall we book your next session? Reply STOP to opt out."
    draft, _ = approve(database, fresh, fresh["contacts"][3], status="pending_approval", text=text)
    runs: list[Any] = []
    serving = threading.Thread(target=lambda: runs.append(send_job(
        database, sim_url, max_seconds=120.0, idle_seconds=1.0, poll_seconds=60.0)))  # fmt: skip
    serving.start()
    with database.connect(autocommit=True) as conn:  # pg_stat_activity: a fresh look each time
        deadline = time.monotonic() + 60
        while not conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = 'LISTEN trainu_outbox'"
        ).fetchone()[0]:
            assert time.monotonic() < deadline, "the send run never started listening"
            time.sleep(0.1)
        shown = decisions.Loaded(draft, row(database, draft)["updated_at"])
        with conn.transaction():
            outcome = decisions.approve(conn, fresh["owner"], shown, text, now=datetime.now(UTC))
        assert outcome.ok
    approved = time.monotonic()
    while row(database, draft)["status"] != "sent":
        assert time.monotonic() - approved < 30, "the waiting run did not wake for the approval"
        time.sleep(0.1)
    serving.join(timeout=30)  # idle 1 s after the last draft was decided
    assert not serving.is_alive() and runs[0].success
    assert len(in_ghl(studio, text)) == 1


def test_operators_pause_resume_inspect_and_send_one_from_the_cli(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    env = {"TRAINU_GHL_TOKEN": SIM_TOKEN, "TRAINU_GHL_BASE_URL": sim_url}
    message_id, text = approve(database, fresh, fresh["contacts"][2])
    paused = trainu("outbox", "pause", LOCATION, database=database)
    assert paused.returncode == 0 and paused.stdout.strip() == f"{LOCATION}: paused"
    status = trainu("outbox", "status", database=database)
    [line] = [x for x in status.stdout.splitlines() if x.startswith(LOCATION)]
    assert "PAUSED (paused by an operator)" in line and "due 1" in line
    held = trainu("outbox", "send-now", str(message_id), database=database, env=env)
    assert held.returncode == 0 and held.stdout.strip() == f"{message_id}: approved"
    assert in_ghl(studio, text) == []  # paused: not even send-now goes
    assert trainu("outbox", "resume", LOCATION, database=database).returncode == 0
    with database.connect() as conn:
        conn.execute("TRUNCATE ops.ghl_requests")
    sent = trainu("outbox", "send-now", str(message_id), database=database, env=env)
    assert sent.returncode == 0 and sent.stdout.strip() == f"{message_id}: sent"
    assert len(in_ghl(studio, text)) == 1
    with database.connect() as conn:  # its request took its slot in the shared budget
        logged = conn.execute("SELECT location_id, answered_at IS NOT NULL FROM ops.ghl_requests")
        assert logged.fetchall() == [(LOCATION, True)]
    again = trainu("outbox", "send-now", str(message_id), database=database, env=env)
    assert again.returncode == 1 and "is sent: only approved messages are sent" in again.stderr
    assert len(in_ghl(studio, text)) == 1
    bad = trainu("outbox", "pause", "no-such-studio", database=database)
    assert bad.returncode == 1 and "unknown studio" in bad.stderr


# --- several studios at once ---------------------------------------------------------------

OTHER = "loc-outbox-b"


@pytest.fixture(scope="module")
def other_studio() -> Studio:
    return generate_studio(OTHER, trainers=1, clients=30, days=5, seed=12)


@pytest.fixture(scope="module")
def other_url(other_studio: Studio) -> Iterator[str]:
    with running_simulator(other_studio, rate_limit=None) as url:
        yield url


@pytest.fixture(scope="module")
def other_world(database: Database, other_studio: Studio, world: dict[str, Any]) -> dict[str, Any]:
    with database.connect() as conn:
        clients = in_trainu(conn, other_studio, "Other Gym")
    # `approve` writes as the first studio's owner: an approval's author is not checked here
    return {"owner": world["owner"], "clients": clients, "contacts": list(clients)}


def approve_in(database: Database, studio_world: dict[str, Any], location: str, contact: str,
               text: str) -> UUID:  # fmt: skip
    with database.connect() as conn:
        return conn.execute(
            """INSERT INTO app.messages (location_id, client_id, direction, channel, status,
                   body, draft_body, generator, purpose, approved_body, approved_by,
                   approved_at, trigger)
               VALUES (%s, %s, 'outbound', 'SMS', 'approved', %s, %s, 'template',
                       're_engagement', %s, %s, now(), '{}')
               RETURNING id""",
            (location, studio_world["clients"][contact], text, text, text,
             studio_world["owner"].id),
        ).fetchone()[0]  # fmt: skip


@contextmanager
def both_studios(sim_url: str, other_url: str, budget: Any = UNLIMITED) -> Iterator[PerStudio]:
    with (
        GhlClient(SIM_TOKEN, base_url=sim_url, budget=budget) as first,
        GhlClient(SIM_TOKEN, base_url=other_url, budget=budget) as second,
    ):
        yield PerStudio({LOCATION: first, OTHER: second})


def drain_both(database: Database, router: PerStudio, **options: Any) -> outbox.Report:
    with database.connect(autocommit=True) as conn:
        return outbox.drain(conn, router, run_id="test-run", approval_expiry=EXPIRY,  # type: ignore[arg-type]
                            **{"cap": 500, "lease": LEASE, **options})  # fmt: skip


def sent_at(database: Database, ids: list[UUID]) -> list[datetime]:
    with database.connect() as conn:
        return [r[0] for r in conn.execute(
            "SELECT sent_at FROM app.messages WHERE id = ANY(%s) ORDER BY sent_at", (ids,),
        )]  # fmt: skip


def test_a_studio_waiting_on_its_rate_limit_does_not_hold_up_another(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any],
    other_studio: Studio, other_url: str, other_world: dict[str, Any],
) -> None:  # fmt: skip
    # the first studio's messages were approved first, and it can send 3 per 3 seconds
    slow = [approve_in(database, fresh, LOCATION, c, f"Slow studio {c}")
            for c in fresh["contacts"][40:46]]  # fmt: skip
    quick = [approve_in(database, other_world, OTHER, c, f"Other studio {c}")
             for c in other_world["contacts"][:3]]  # fmt: skip
    with both_studios(sim_url, other_url, RequestBudget(requests=3, window=3.0)) as router:
        report = drain_both(database, router)
    assert report.sent == 9
    first_slow, last_quick = sent_at(database, slow), sent_at(database, quick)
    # the other studio was done while the first waited for its window to pass
    assert max(last_quick) < first_slow[3]
    assert first_slow[3] - first_slow[0] >= timedelta(seconds=2.9)
    assert all(len(in_ghl(studio, f"Slow studio {c}")) == 1 for c in fresh["contacts"][40:46])
    assert all(len(in_ghl(other_studio, f"Other studio {c}")) == 1
               for c in other_world["contacts"][:3])  # fmt: skip


def test_a_worker_dying_stops_the_others_and_nothing_is_doubled_or_lost(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any],
    other_studio: Studio, other_url: str, other_world: dict[str, Any],
) -> None:  # fmt: skip
    texts = {approve_in(database, fresh, LOCATION, c, f"Dies {c}"): (studio, f"Dies {c}")
             for c in fresh["contacts"][50:52]}  # fmt: skip
    others = {approve_in(database, other_world, OTHER, c, f"Goes on {c}"):
              (other_studio, f"Goes on {c}") for c in other_world["contacts"][3:9]}  # fmt: skip
    texts |= others

    in_hand, crashed = threading.Event(), threading.Event()

    def crash_or_dawdle(step: str, message_id: UUID) -> None:
        # the first studio's worker dies while the other one is sending its first message
        if step == "sending" and message_id not in others:
            in_hand.wait(timeout=10)
            crashed.set()
            raise Crash(step)
        if step == "claimed" and message_id in others and not in_hand.is_set():
            in_hand.set()
            crashed.wait(timeout=10)
            time.sleep(1.0)  # the run has seen the error by the time this send is done

    outbox.checkpoint = crash_or_dawdle
    with both_studios(sim_url, other_url) as router, pytest.raises(Crash):
        drain_both(database, router)
    outbox.checkpoint = lambda s, m: None
    with database.connect() as conn:
        after_crash = dict(conn.execute(
            "SELECT id, status FROM app.messages WHERE id = ANY(%s)", (list(texts),),
        ).fetchall())  # fmt: skip
        released = conn.execute(
            """SELECT count(*) FROM app.events WHERE event_type = 'message_released'
               AND entity_id = ANY(%s) AND properties->>'reason' = 'send run stopped'""",
            ([str(m) for m in others],),
        ).fetchone()[0]
    # the other studio's worker sent the message in hand and gave the rest back at once
    assert [after_crash[m] for m in others].count("sent") == 1
    assert released == [after_crash[m] for m in others].count("approved") == 5
    with both_studios(sim_url, other_url) as router:
        drain_both(database, router, lease=timedelta(0))  # the dead claim, reconciled
    assert {row(database, m)["status"] for m in texts} == {"sent"}
    assert [len(in_ghl(where, text)) for where, text in texts.values()] == [1] * len(texts)


def test_the_run_cap_holds_across_studios(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any],
    other_studio: Studio, other_url: str, other_world: dict[str, Any],
) -> None:  # fmt: skip
    ids = [approve_in(database, fresh, LOCATION, c, f"Capped {c}")
           for c in fresh["contacts"][60:65]]  # fmt: skip
    ids += [approve_in(database, other_world, OTHER, c, f"Capped {c}")
            for c in other_world["contacts"][10:15]]  # fmt: skip
    with both_studios(sim_url, other_url) as router:
        assert drain_both(database, router, cap=4).sent == 4
        statuses = [row(database, m)["status"] for m in ids]
        assert (statuses.count("sent"), statuses.count("approved")) == (4, 6)
        assert drain_both(database, router).sent == 6


def test_the_send_job_takes_its_slots_from_the_shared_budget(
    database: Database, studio: Studio, sim_url: str, fresh: dict[str, Any]
) -> None:
    message_id, text = approve(database, fresh, fresh["contacts"][66])
    with database.connect() as conn:
        conn.execute("TRUNCATE ops.ghl_requests")
    assert send_job(database, sim_url).success and row(database, message_id)["status"] == "sent"
    with database.connect() as conn:
        logged = conn.execute(
            "SELECT count(*), count(answered_at) FROM ops.ghl_requests WHERE location_id = %s",
            (LOCATION,),
        ).fetchone()
    assert logged == (1, 1)  # the send's one request, answered, in the budget every run reads
    assert len(in_ghl(studio, text)) == 1
