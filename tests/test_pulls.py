"""Incremental pulls from the simulator into real Postgres, through the shared apply path."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from ghl_simulator import RateLimit, generate_studio, webhook_body
from ghl_simulator.studio import Change
from tests.cli_harness import run as trainu
from tests.conftest import drop_database, new_database
from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator
from tests.ingest_helpers import land
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.budget import RequestBudget
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ingest.process import process_pending
from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream
from trainu_dagster.jobs import pull_ghl
from trainu_dagster.messaging.inbound import record_pulled
from trainu_dagster.resources.ghl import GhlResource
from trainu_dagster.resources.postgres import PostgresResource

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
BACKFILL = PullOptions(since=NOW - timedelta(days=40))


class Interrupted(Exception):
    pass


@pytest.fixture
def fresh_database(template_database: Database) -> Iterator[Database]:
    """Pull state is per database: each test starts with no cursors."""
    db = new_database(template_database, "pulls")
    yield db
    drop_database(db)


@pytest.fixture
def conn(fresh_database: Database) -> Iterator[psycopg.Connection]:
    with fresh_database.connect(autocommit=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def studio():
    return generate_studio("loc-pull", trainers=3, clients=300, days=30, seed=11, now=NOW)


@pytest.fixture(scope="module")
def sim_url(studio) -> Iterator[str]:
    with running_simulator(studio, rate_limit=None) as url:
        yield url


def client_for(url: str) -> GhlClient:
    return GhlClient(SIM_TOKEN, base_url=url, budget=RequestBudget(requests=10_000))


def table_state(conn: psycopg.Connection, table: str, key: str, *columns: str) -> dict:
    rows = conn.execute(
        f"SELECT {key}, {', '.join(columns)} FROM raw.{table} "  # noqa: S608 - test constants
        "WHERE deleted_at IS NULL"
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def live(records: dict) -> dict:
    return {k: v for k, v in records.items() if not v.get("deleted")}


def test_a_backfill_lands_every_stream_as_the_simulator_knows_it(conn, studio, sim_url) -> None:
    with client_for(sim_url) as client:
        results = {s: pull_stream(conn, client, studio.location_id, s, options=BACKFILL, now=NOW)
                   for s in STREAMS}  # fmt: skip
    contacts = table_state(conn, "ghl_contacts", "contact_id", "email", "dnd")
    assert contacts == {
        cid: (c.get("email"), bool(c.get("dnd"))) for cid, c in live(studio.contacts).items()
    }
    appointments = table_state(conn, "ghl_appointments", "appointment_id", "status")
    window_start = BACKFILL.since
    expected = {
        aid: (a["appointmentStatus"],)
        for aid, a in live(studio.appointments).items()
        if datetime.fromisoformat(a["startTime"]) >= window_start
    }
    assert appointments == expected
    assert set(table_state(conn, "ghl_messages", "message_id", "direction")) == {
        mid
        for mid, m in studio.messages.items()
        if datetime.fromisoformat(m["dateUpdated"]) >= window_start
    }
    assert set(table_state(conn, "ghl_opportunities", "opportunity_id", "status")) == set(
        live(studio.opportunities)
    )
    assert all(r.rejected == 0 for r in results.values())
    # DND contacts and STOP replies became opt-outs through the same rules as webhooks.
    opted_out = {r[0] for r in conn.execute("SELECT contact_id FROM raw.ghl_opt_outs")}
    assert {cid for cid, c in live(studio.contacts).items() if c.get("dnd")} <= opted_out
    states = conn.execute(
        "SELECT stream, last_status, records_pulled FROM raw.pull_state ORDER BY stream"
    ).fetchall()
    assert [(s, status) for s, status, _ in states] == [(s, "succeeded") for s in sorted(STREAMS)]


@pytest.mark.parametrize(("stream", "page"), [("opportunities", 100), ("contacts", 500)])
def test_an_interrupted_pull_resumes_from_its_cursor(
    conn, studio, sim_url, stream: str, page: int
) -> None:
    def crash_after_two_pages(result) -> None:  # noqa: ANN001
        if result.pages == 2:
            raise Interrupted

    if stream == "contacts":  # contacts come 500 a page: enough of them for three pages
        for _ in range(2 * page + 1 - len(live(studio.contacts))):
            studio.add_contact(NOW - timedelta(days=1))
    records = live(studio.opportunities if stream == "opportunities" else studio.contacts)
    with client_for(sim_url) as client:
        with pytest.raises(Interrupted):
            pull_stream(conn, client, studio.location_id, stream,
                        options=BACKFILL, on_page=crash_after_two_pages)  # fmt: skip
        status, pulled = conn.execute(
            "SELECT last_status, records_pulled FROM raw.pull_state WHERE stream = %s", (stream,)
        ).fetchone()
        assert (status, pulled) == ("failed", 2 * page)
        resumed = pull_stream(conn, client, studio.location_id, stream, options=BACKFILL)
    assert resumed.resumed
    total = conn.execute(
        "SELECT records_pulled FROM raw.pull_state WHERE stream = %s", (stream,)
    ).fetchone()[0]
    assert total == len(records)  # every record read exactly once across both runs
    table, key = {"contacts": ("ghl_contacts", "contact_id"),
                  "opportunities": ("ghl_opportunities", "opportunity_id")}[stream]  # fmt: skip
    assert set(table_state(conn, table, key, "location_id")) == set(records)


def test_an_incremental_run_reads_only_what_changed_since_the_last(conn, studio, sim_url) -> None:
    with client_for(sim_url) as client:
        pull_stream(conn, client, studio.location_id, "contacts", now=NOW)
        pull_stream(conn, client, studio.location_id, "messages", now=NOW)
        watermark = conn.execute(
            "SELECT watermark FROM raw.pull_state WHERE stream = 'contacts'"
        ).fetchone()[0]
        new = studio.add_contact(NOW + timedelta(minutes=1), firstName="New", lastName="Client")
        old = next(c for c in live(studio.contacts).values() if c["dateUpdated"] < "2026-11-01")
        studio.update_contact(old["id"], NOW + timedelta(minutes=2), email="moved@x.test")
        contacts = pull_stream(conn, client, studio.location_id, "contacts", now=NOW)
        messages = pull_stream(conn, client, studio.location_id, "messages", now=NOW)
    # what changed after the last update seen (and the overlap's few minutes before it)
    recent = {
        cid
        for cid, c in live(studio.contacts).items()
        if datetime.fromisoformat(c["dateUpdated"]) >= watermark - PullOptions().overlap
    }
    assert {new["id"], old["id"]} <= recent
    assert contacts.records == len(recent) < len(live(studio.contacts))
    assert table_state(conn, "ghl_contacts", "contact_id", "email")[old["id"]] == ("moved@x.test",)
    assert messages.records <= 1  # the overlap may re-read the newest instant, nothing more


def test_pulls_and_webhooks_converge_on_the_newest_state(conn, studio, sim_url) -> None:
    contact_id = next(iter(live(studio.contacts)))
    with client_for(sim_url) as client:
        pull_stream(conn, client, studio.location_id, "contacts", options=BACKFILL)
        # A newer change arrives by webhook; the next pull (same state) must not undo it,
        # and an old webhook replayed afterwards must not either.
        before = copy.deepcopy(studio.contacts[contact_id])
        old = webhook_body(
            Change("contact", contact_id, "update", NOW, "ContactUpdate", before),
            studio,
            webhook_id="old",
            timestamp=NOW,
        )
        studio.update_contact(contact_id, NOW + timedelta(hours=1), email="new@x.test")
        newer = webhook_body(
            studio.changes[-1], studio, webhook_id="new", timestamp=NOW + timedelta(hours=1)
        )
        for payload in (newer, old):
            land(conn, payload)
            process_pending(conn)
        pull_stream(conn, client, studio.location_id, "contacts", options=BACKFILL)
    email = conn.execute(
        "SELECT email FROM raw.ghl_contacts WHERE contact_id = %s", (contact_id,)
    ).fetchone()[0]
    assert email == "new@x.test" == studio.contacts[contact_id]["email"]


def test_a_10000_contact_backfill_under_the_real_rate_limit_has_no_failed_requests(
    conn,
) -> None:
    big = generate_studio("loc-big", trainers=5, clients=10_000, days=7, seed=3, now=NOW)
    with running_simulator(big, rate_limit=RateLimit(100, 10.0, daily=200_000)) as url:
        with GhlClient(SIM_TOKEN, base_url=url) as client:
            for stream in ("contacts", "opportunities"):
                pull_stream(conn, client, big.location_id, stream, options=BACKFILL)
        stats = httpx.get(url + "/_sim/stats").json()
    count = conn.execute("SELECT count(*) FROM raw.ghl_contacts").fetchone()[0]
    assert count == len(live(big.contacts)) >= 9_000
    assert stats["rateLimited"] == 0
    assert stats["failed"] == 0
    assert stats["total"] > 100  # more than one window's worth: the budget had to pace


def test_the_scheduled_pull_covers_every_backfilled_studio_and_reports_its_tables(
    fresh_database: Database, studio, sim_url
) -> None:
    with fresh_database.connect() as admin:
        for location_id, state in ((studio.location_id, "succeeded"), ("loc-new", "running")):
            admin.execute(
                "INSERT INTO app.locations (location_id, name) VALUES (%s, 'Pull studio')",
                (location_id,),
            )
            admin.execute(
                "INSERT INTO raw.backfills (location_id, since, status) VALUES (%s, %s, %s)",
                (location_id, BACKFILL.since, state),
            )
    result = pull_ghl.execute_in_process(
        resources={
            "database": PostgresResource(database_url=fresh_database.url()),
            "ghl": GhlResource(base_url=sim_url, token=SIM_TOKEN),
        },
        run_config={"ops": {"pull_ghl_streams": {"config": {"since": BACKFILL.since.isoformat()}}}},
    )
    assert result.success
    records = {
        e.asset_key.path[-1]: e.materialization.metadata["records"].value
        for e in result.get_asset_materialization_events()
    }
    assert records["ghl_contacts"] == len(live(studio.contacts))
    assert records["ghl_appointments"] == records["ghl_appointment_start_times"] > 0
    assert {"ghl_messages", "ghl_opportunities"} <= set(records)
    with fresh_database.connect() as admin:
        pulled = admin.execute("SELECT DISTINCT location_id, last_status FROM raw.pull_state")
        # the studio still being backfilled is left to its backfill
        assert pulled.fetchall() == [(studio.location_id, "succeeded")]


def test_a_second_pull_of_a_stream_already_being_pulled_steps_aside(
    conn, fresh_database: Database, studio, sim_url
) -> None:
    started = []

    def pull_again_meanwhile(result) -> None:  # noqa: ANN001
        if not started:
            with fresh_database.connect(autocommit=True) as other, client_for(sim_url) as c:
                started.append(pull_stream(other, c, studio.location_id, "opportunities"))

    with client_for(sim_url) as client:
        first = pull_stream(conn, client, studio.location_id, "opportunities",
                            options=BACKFILL, on_page=pull_again_meanwhile)  # fmt: skip
    assert started[0].skipped and started[0].records == 0
    assert not first.skipped and first.records == len(live(studio.opportunities))


def test_trainu_pull_lands_a_stream_and_takes_its_requests_from_the_shared_budget(
    fresh_database: Database, studio, sim_url
) -> None:
    with fresh_database.connect() as admin:
        admin.execute(
            "INSERT INTO app.locations (location_id, name) VALUES (%s, 'Pull studio')",
            (studio.location_id,),
        )
    env = {"TRAINU_GHL_TOKEN": SIM_TOKEN, "TRAINU_GHL_BASE_URL": sim_url}
    pulled = trainu("pull", "--stream", "contacts", "--since", f"{BACKFILL.since:%Y-%m-%d}",
                    database=fresh_database, env=env)  # fmt: skip
    assert pulled.returncode == 0, pulled.stderr
    with fresh_database.connect() as admin:
        contacts = admin.execute("SELECT count(*) FROM raw.ghl_contacts WHERE deleted_at IS NULL")
        assert contacts.fetchone()[0] == len(live(studio.contacts))
        # each page's request held its slot in the budget every run and command shares
        logged = admin.execute(
            "SELECT location_id, count(*), count(answered_at) FROM ops.ghl_requests GROUP BY 1"
        ).fetchall()
    [(location_id, requests, answered)] = logged
    assert location_id == studio.location_id and requests == answered > 0
    bad = trainu("pull", "--stream", "gossip", database=fresh_database, env=env)
    assert bad.returncode == 1 and "unknown stream" in bad.stderr


def test_pulled_messages_reach_the_threads_and_a_pulled_stop_opts_the_client_out(
    conn, studio, sim_url
) -> None:
    """What a lost webhook would have brought: the client's replies on their thread, and a
    STOP-family reply GHL did not turn into DND still stops what waits to be sent."""
    conn.execute(
        "INSERT INTO app.locations (location_id, name) VALUES (%s, 'Pull studio')",
        (studio.location_id,),
    )
    with client_for(sim_url) as client:
        pull_stream(conn, client, studio.location_id, "contacts", now=NOW)
        pull_stream(conn, client, studio.location_id, "messages", now=NOW,
                    on_messages=record_pulled)  # fmt: skip
        replies = {
            m["id"]
            for m in studio.messages.values()
            if m["direction"] == "inbound" and m["body"].strip()
            and m["messageType"] in ("TYPE_SMS", "TYPE_EMAIL")
            and m["contactId"] in live(studio.contacts)
        }  # fmt: skip
        threaded = conn.execute(
            "SELECT ghl_message_id FROM app.messages WHERE status = 'received'"
        ).fetchall()
        assert replies and {r[0] for r in threaded} == replies

        contact = next(c for c in live(studio.contacts).values() if c.get("phone") and not c["dnd"])
        client_id = conn.execute(
            "SELECT id FROM app.clients WHERE ghl_contact_id = %s", (contact["id"],)
        ).fetchone()[0]
        waiting = conn.execute(
            """INSERT INTO app.messages (location_id, client_id, direction, channel, status,
                   body, draft_body, generator, purpose, trigger)
               VALUES (%s, %s, 'outbound', 'SMS', 'pending_approval', 'See you soon?',
                       'See you soon?', 'template', 're_engagement', '{}') RETURNING id""",
            (studio.location_id, client_id),
        ).fetchone()[0]
        stop = studio.add_message(contact["id"], NOW + timedelta(minutes=3),
                                  "please stop texting me", direction="inbound")  # fmt: skip
        pull_stream(conn, client, studio.location_id, "messages", now=NOW,
                    on_messages=record_pulled)  # fmt: skip
    assert not studio.contacts[contact["id"]]["dnd"]  # GHL saw no plain STOP
    assert conn.execute(
        "SELECT trigger->>'intent' FROM app.messages WHERE ghl_message_id = %s", (stop["id"],)
    ).fetchone() == ("opt_out",)
    assert conn.execute(
        "SELECT opt_out_reason FROM app.clients WHERE id = %s", (client_id,)
    ).fetchone() == ("STOP reply",)
    assert conn.execute(
        "SELECT status, suppressed_reason FROM app.messages WHERE id = %s", (waiting,)
    ).fetchone() == ("suppressed", "client opted out")
