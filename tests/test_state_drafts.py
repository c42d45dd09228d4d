"""State drafts on a real studio: pulled from the simulator, marts built by the real dbt,
scored and drafted by the real Dagster assets. Tomorrow's sessions get reminders scheduled
for the day before in the client's local time, today's newly high risks a re-engagement,
goal milestones congratulations; materializing again drafts nothing twice."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from dagster import DagsterInstance, materialize

from ghl_simulator import generate_studio, write_app_data
from tests.conftest import drop_database, new_database
from tests.dbt_harness import dbt_ok
from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator
from trainu_dagster.assets.drafts import state_drafts
from trainu_dagster.assets.insights import client_risk
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream
from trainu_dagster.messaging.drafts_rules import REMINDER_AT
from trainu_dagster.resources.postgres import PostgresResource

LOCATION = "loc-state-drafts"


@pytest.fixture(scope="module")
def built(
    template_database: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A studio as of now (drafts are about the real tomorrow), pulled and modelled."""
    now = datetime.now(UTC)
    studio = generate_studio(LOCATION, trainers=3, clients=120, days=120, seed=8, now=now)
    database = new_database(template_database, "state-drafts")
    with (
        running_simulator(studio, rate_limit=None) as url,
        GhlClient(SIM_TOKEN, base_url=url) as client,
        database.connect(autocommit=True) as conn,
    ):
        for stream in STREAMS:
            pull_stream(conn, client, LOCATION, stream,
                        options=PullOptions(since=now - timedelta(days=150)), now=now)  # fmt: skip
    with database.connect() as conn, conn.transaction():
        write_app_data(conn, studio)
    dbt_ok(
        database, tmp_path_factory.mktemp("dbt"), "build", "--exclude-resource-type", "unit_test"
    )
    yield database
    drop_database(database)


def open_drafts(database: Database) -> list[tuple]:
    with database.connect() as conn:
        return conn.execute(
            """SELECT m.purpose, m.status, m.client_id, m.scheduled_for, m.trigger, m.body,
                      coalesce(c.timezone, l.timezone), c.opted_out_at IS NOT NULL
               FROM app.messages m JOIN app.clients c ON c.id = m.client_id
               JOIN app.locations l ON l.location_id = m.location_id
               ORDER BY m.idempotency_key"""
        ).fetchall()


def test_the_drafts_asset_drafts_what_is_due_once(built: Database) -> None:
    resources = {"database": PostgresResource(database_url=built.url())}
    with DagsterInstance.ephemeral() as instance:
        first = materialize([client_risk, state_drafts], resources=resources, instance=instance)
        made = open_drafts(built)
        second = materialize([client_risk, state_drafts], resources=resources, instance=instance)
    assert first.success and second.success
    assert open_drafts(built) == made  # nothing twice, nothing changed

    purposes = {row[0] for row in made}
    assert {"reminder", "re_engagement", "milestone"} <= purposes
    assert all(status in ("pending_approval", "needs_manual") for _, status, *_ in made)
    assert not any(opted_out for *_, opted_out in made)
    slots = [(purpose, client, trigger.get("appointment_id")) for purpose, _, client, _, trigger,
             *_ in made]  # fmt: skip
    assert len(slots) == len(set(slots))  # one open draft per client, purpose and booking

    now = datetime.now(UTC)
    for purpose, _, _, scheduled_for, trigger, body, zone, _ in made:
        if purpose != "reminder":
            continue
        local_start = datetime.fromisoformat(trigger["start_time"]).astimezone(ZoneInfo(zone))
        assert local_start.date() == (now.astimezone(ZoneInfo(zone)) + timedelta(days=1)).date()
        the_day_before = datetime.combine(local_start.date() - timedelta(days=1), REMINDER_AT,
                                          ZoneInfo(zone))  # fmt: skip
        if the_day_before > now:  # 09:00 local has not come yet: it waits for it
            assert scheduled_for == the_day_before
        else:  # past it already: due now (the asset's now, a moment ago)
            assert the_day_before < scheduled_for <= now
        assert "tomorrow" in body

    [metadata] = [
        m.metadata for m in first.asset_materializations_for_node("messaging__state_drafts")
    ]
    assert metadata["drafted"].value + metadata["needs_manual"].value == len(made)
    [again] = [
        m.metadata for m in second.asset_materializations_for_node("messaging__state_drafts")
    ]
    assert again["drafted"].value == again["needs_manual"].value == 0
