"""A studio TrainU sees for the first time gets its whole history, resumably: the backfill
sensor (real context) asks for a run, the backfill job (real Dagster) pulls every stream
from the simulator over HTTP, and after the real `dbt build` the bookings mart counts each
status exactly as the simulator's ground truth does, over the studio's whole history."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunRequest, SkipReason, build_sensor_context

from ghl_simulator import Studio, generate_studio
from sensors.studio_backfill import studio_backfill_sensor
from tests.conftest import drop_database, new_database
from tests.dbt_harness import dbt_ok
from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator
from trainu_dagster.db.server import Database
from trainu_dagster.ingest import backfill
from trainu_dagster.ingest.pull import backfilled_locations
from trainu_dagster.jobs import LOCATION_TAG, backfill_ghl_history, pull_ghl
from trainu_dagster.resources.ghl import GhlResource
from trainu_dagster.resources.postgres import PostgresResource

TRAINU = str(Path(sys.executable).parent / "trainu")
# Generated up to today, so the default 12 months of history reach back past its start.
NOW = datetime.now(UTC).replace(microsecond=0)
LOCATION = "loc-history"


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, trainers=4, clients=220, days=150, seed=31, now=NOW)


@pytest.fixture(scope="module")
def sim_url(studio: Studio) -> Iterator[str]:
    with running_simulator(studio) as url:  # GHL's own rate limit
        yield url


@pytest.fixture
def fresh(template_database: Database) -> Iterator[Database]:
    db = new_database(template_database, "backfill")
    yield db
    drop_database(db)


def trainu(database: Database, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINU_DATABASE_URL": database.url()}
    return subprocess.run([TRAINU, *args], env=env, capture_output=True, text=True, timeout=120)


def resources(database: Database, sim_url: str) -> dict:
    return {
        "database": PostgresResource(database_url=database.url()),
        "ghl": GhlResource(base_url=sim_url, token=SIM_TOKEN),
    }


def sense(database: Database, instance: DagsterInstance) -> list[RunRequest | SkipReason]:
    context = build_sensor_context(
        instance=instance, resources={"database": PostgresResource(database_url=database.url())}
    )
    found = studio_backfill_sensor(context)
    return found if isinstance(found, list) else [found]


def backfill_run(database: Database, sim_url: str, instance: DagsterInstance, request: RunRequest):
    return backfill_ghl_history.execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        resources=resources(database, sim_url),
        instance=instance,
        raise_on_error=False,
    )


def register(database: Database) -> str:
    """As an owner would, without naming a timezone (it defaults to UTC)."""
    added = trainu(database, "locations", "add", LOCATION, "--name", "History studio")
    assert added.returncode == 0, added.stderr
    return added.stdout


def test_a_new_studio_lands_its_whole_history_and_its_bookings_equal_the_truth(
    fresh: Database, studio: Studio, sim_url: str, tmp_path: Path
) -> None:
    assert "last 12 months of history" in register(fresh)
    with DagsterInstance.ephemeral() as instance:
        [request] = sense(fresh, instance)
        assert isinstance(request, RunRequest) and request.tags[LOCATION_TAG] == LOCATION
        # while that run is queued or going, the sensor asks for no second one
        queued = instance.create_run_for_job(
            backfill_ghl_history,
            run_config=request.run_config,
            status=DagsterRunStatus.NOT_STARTED,
            tags=request.tags,
        )
        assert [type(r) for r in sense(fresh, instance)] == [SkipReason]
        instance.delete_run(queued.run_id)

        result = backfill_run(fresh, sim_url, instance, request)
        assert result.success
        materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
        assert {"ghl_contacts", "ghl_appointments", "ghl_messages"} <= materialized
        assert [type(r) for r in sense(fresh, instance)] == [SkipReason]  # done: not again

    with fresh.connect() as conn:
        state = backfill.load(conn, LOCATION)
        assert (state.status, sorted(state.streams_done)) == (
            "succeeded",
            ["appointments", "contacts", "messages", "opportunities"],
        )
        assert state.since < NOW - timedelta(days=360)
        assert backfilled_locations(conn) == [LOCATION]  # thereafter, the schedule's
        # GHL's own view of the studio replaced the guesses it was registered with
        timezone = conn.execute(
            "SELECT timezone FROM app.locations WHERE location_id = %s", (LOCATION,)
        ).fetchone()[0]
        assert timezone == studio.location["timezone"] == "America/New_York"
        trainers = conn.execute(
            "SELECT ghl_user_id, name FROM app.trainers WHERE location_id = %s", (LOCATION,)
        ).fetchall()
        assert dict(trainers) == {u["id"]: u["name"] for u in studio.users.values()}

    dbt_ok(fresh, tmp_path, "build", "--exclude-resource-type", "unit_test")
    with fresh.connect() as conn:
        counted = dict(
            conn.execute(
                """SELECT status, count(*) FROM marts.bookings
                   WHERE location_id = %s AND NOT is_deleted GROUP BY status""",
                (LOCATION,),
            ).fetchall()
        )
    truth = Counter(
        a["appointmentStatus"] for a in studio.appointments.values() if not a.get("deleted")
    )
    assert counted == dict(truth)
    first = min(datetime.fromisoformat(a["startTime"]) for a in studio.appointments.values())
    assert first < NOW - timedelta(days=140)  # the whole history, not the last two weeks

    status = trainu(fresh, "locations", "status")
    assert status.returncode == 0, status.stderr
    assert f"{LOCATION}\tbackfill succeeded" in status.stdout
    assert f"{LOCATION}\tappointments\tsucceeded\t100%" in status.stdout


def test_an_interrupted_backfill_resumes_where_it_stopped(
    fresh: Database, studio: Studio, sim_url: str
) -> None:
    register(fresh)
    # GHL refuses the message export once (a 400 is not retried): contacts and appointments
    # are in, the run fails, and the studio's backfill is marked failed with the reason.
    fault = {"status": 400, "count": 1, "path_prefix": "/conversations/messages/export"}
    httpx.post(sim_url + "/_sim/faults", json=fault).raise_for_status()
    with DagsterInstance.ephemeral() as instance:
        [request] = sense(fresh, instance)
        assert not backfill_run(fresh, sim_url, instance, request).success
        with fresh.connect() as conn:
            state = backfill.load(conn, LOCATION)
            assert (state.status, state.streams_done) == ("failed", ["contacts", "appointments"])
            assert "GhlError" in state.last_error
            later = datetime.now(UTC) + timedelta(minutes=6)
            assert [b.location_id for b in backfill.due(conn, now=datetime.now(UTC))] == []
            assert [b.location_id for b in backfill.due(conn, now=later)] == [LOCATION]

        before = httpx.get(sim_url + "/_sim/stats").json()["byRoute"]
        assert backfill_run(fresh, sim_url, instance, request).success
        after = httpx.get(sim_url + "/_sim/stats").json()["byRoute"]
    # the finished streams were not pulled again; the rest were
    assert after["GET /calendars/events"] == before["GET /calendars/events"]
    assert after["POST /contacts/search"] == before["POST /contacts/search"]
    assert sum(after["GET /conversations/messages/export"].values()) > sum(
        before["GET /conversations/messages/export"].values()
    )
    with fresh.connect() as conn:
        state = backfill.load(conn, LOCATION)
        assert (state.status, state.attempts) == ("succeeded", 2)
        messages = conn.execute(
            "SELECT count(*) FROM raw.ghl_messages WHERE location_id = %s", (LOCATION,)
        ).fetchone()[0]
    # every message of the history pulled (older clients' older messages are out of range)
    in_range = [m for m in studio.messages.values() if m["dateUpdated"] >= state.since.isoformat()]
    assert messages == len(in_range) < len(studio.messages)


def test_once_backfilled_the_schedule_pulls_incrementally(
    fresh: Database, studio: Studio, sim_url: str
) -> None:
    register(fresh)
    with DagsterInstance.ephemeral() as instance:
        [request] = sense(fresh, instance)
        assert backfill_run(fresh, sim_url, instance, request).success
        result = pull_ghl.execute_in_process(resources=resources(fresh, sim_url), instance=instance)
    assert result.success
    with fresh.connect() as conn:
        appointments = conn.execute(
            "SELECT records_pulled FROM raw.pull_state WHERE stream = 'appointments'"
        ).fetchone()[0]
    total = sum(1 for a in studio.appointments.values() if not a.get("deleted"))
    # the second pass re-read the recent weeks (sessions get marked), not the whole year
    assert total < appointments < 1.5 * total
