"""Incremental pulls from the simulator into real Postgres, through the shared apply path."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest
from dagster import materialize

from tests.conftest import drop_database, new_database
from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator
from tests.ingest_helpers import land
from trainu_dagster.assets.pulls import ghl_pull_assets
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.client import GhlClient, RequestBudget
from trainu_dagster.ghl.simulator import RateLimit, generate_studio, webhook_body
from trainu_dagster.ghl.simulator.studio import Change
from trainu_dagster.ingest.process import process_pending
from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream
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


def test_an_interrupted_pull_resumes_from_its_cursor(conn, studio, sim_url) -> None:
    def crash_after_three_pages(result) -> None:  # noqa: ANN001
        if result.pages == 3:
            raise Interrupted

    with client_for(sim_url) as client:
        with pytest.raises(Interrupted):
            pull_stream(conn, client, studio.location_id, "contacts",
                        options=BACKFILL, on_page=crash_after_three_pages)  # fmt: skip
        status, pulled = conn.execute(
            "SELECT last_status, records_pulled FROM raw.pull_state WHERE stream = 'contacts'"
        ).fetchone()
        assert (status, pulled) == ("failed", 300)
        resumed = pull_stream(conn, client, studio.location_id, "contacts", options=BACKFILL)
    assert resumed.resumed
    total = conn.execute(
        "SELECT records_pulled FROM raw.pull_state WHERE stream = 'contacts'"
    ).fetchone()[0]
    contacts = live(studio.contacts)
    assert total == len(contacts)  # every contact read exactly once across both runs
    assert set(table_state(conn, "ghl_contacts", "contact_id", "email")) == set(contacts)


def test_an_incremental_run_reads_only_what_is_new(conn, studio, sim_url) -> None:
    with client_for(sim_url) as client:
        pull_stream(conn, client, studio.location_id, "contacts", now=NOW)
        pull_stream(conn, client, studio.location_id, "messages", now=NOW)
        studio.add_contact(NOW + timedelta(minutes=1), firstName="New", lastName="Client")
        contacts = pull_stream(conn, client, studio.location_id, "contacts", now=NOW)
        messages = pull_stream(conn, client, studio.location_id, "messages", now=NOW)
    assert contacts.records == 1
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
            event_id = land(conn, payload)
            process_pending(conn, min_id=event_id, max_id=event_id)
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


def test_the_pull_assets_materialise_every_registered_studio(
    fresh_database: Database, studio, sim_url
) -> None:
    with fresh_database.connect() as admin:
        admin.execute(
            "INSERT INTO app.locations (location_id, name) VALUES (%s, 'Pull studio')",
            (studio.location_id,),
        )
    result = materialize(
        ghl_pull_assets,
        resources={
            "database": PostgresResource(database_url=fresh_database.url()),
            "ghl": GhlResource(base_url=sim_url, token=SIM_TOKEN),
        },
        run_config={
            "ops": {
                a.op.name: {"config": {"since": BACKFILL.since.isoformat()}}
                for a in ghl_pull_assets
            }  # fmt: skip
        },
    )
    assert result.success
    records = {
        m.event_specific_data.materialization.asset_key.path[-1]:
        m.event_specific_data.materialization.metadata["records"].value
        for m in result.get_asset_materialization_events()
    }  # fmt: skip
    assert records["contacts"] == len(live(studio.contacts))
    with fresh_database.connect() as admin:
        statuses = admin.execute("SELECT DISTINCT last_status FROM raw.pull_state").fetchall()
    assert statuses == [("succeeded",)]
