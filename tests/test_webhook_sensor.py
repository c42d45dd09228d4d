"""The webhook sensor evaluated with real sensor contexts against a real instance, and the
ingest job it launches run for real: one run drains what is pending and what lands while
it runs, and the sensor never queues a second run behind a waiting one."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    SkipReason,
    build_sensor_context,
)

from sensors.dlq_retry import dlq_retry_sensor
from sensors.webhook_events import webhook_events_sensor
from tests.ingest_helpers import land
from trainu_dagster.db.server import Database
from trainu_dagster.jobs import ingest_webhook_events
from trainu_dagster.resources.postgres import PostgresResource


def contact(i: int) -> dict:
    return {
        "type": "ContactUpdate",
        "locationId": "loc-1",
        "id": f"c-{i}",
        "firstName": f"N{i}",
        "timestamp": "2026-11-24T10:00:00+00:00",
    }


@pytest.fixture
def instance() -> DagsterInstance:
    with DagsterInstance.ephemeral() as instance:
        yield instance


def evaluate(sensor, database: Database, instance: DagsterInstance):
    context = build_sensor_context(
        instance=instance, resources={"database": PostgresResource(database_url=database.url())}
    )
    result = sensor(context)
    return result if isinstance(result, RunRequest | SkipReason) else list(result)


def run_ingest(database: Database, instance: DagsterInstance, **limits: float):
    config = {"max_seconds": 20.0, "idle_seconds": 1.0, "report_seconds": 0.5} | limits
    return ingest_webhook_events.execute_in_process(
        run_config={"ops": {"apply_webhook_deliveries": {"config": config}}},
        resources={"database": PostgresResource(database_url=database.url())},
        instance=instance,
    )


def settle(database: Database) -> None:
    """Age every delivery beyond the sensor's window, as if traffic had stopped a while ago."""
    with database.connect() as conn:
        conn.execute("UPDATE raw.webhook_events SET received_at = received_at - interval '1 hour'")


def test_one_run_drains_everything_and_lands_what_arrives_while_it_runs(
    database: Database, instance: DagsterInstance
) -> None:
    with database.connect() as conn:
        for i in range(1200):  # more than one batch
            land(conn, contact(i))

    def late_arrivals() -> None:
        time.sleep(0.5)
        with database.connect() as conn:
            for i in range(1200, 1205):
                land(conn, contact(i))

    arriving = threading.Thread(target=late_arrivals)
    arriving.start()
    result = run_ingest(database, instance)
    arriving.join()
    assert result.success
    with database.connect() as conn:
        statuses = conn.execute("SELECT status, count(*) FROM raw.webhook_events GROUP BY 1")
        assert dict(statuses.fetchall()) == {"processed": 1205}
        assert conn.execute("SELECT count(*) FROM raw.ghl_contacts").fetchone() == (1205,)
        synced = conn.execute(
            "SELECT sum((properties->>'events')::int) FROM app.events WHERE event_type = 'sync_ok'"
        ).fetchone()
        assert synced == (1205,)
    # The raw table it changed is reported materialized, which refreshes the models below it.
    materialized = result.get_asset_materialization_events()
    assert {e.asset_key for e in materialized} == {AssetKey(["raw", "ghl_contacts"])}
    assert sum(e.materialization.metadata["deliveries"].value for e in materialized) == 1205
    settle(database)


def test_the_sensor_keeps_at_most_one_run_waiting_however_many_deliveries_arrive(
    database: Database, instance: DagsterInstance
) -> None:
    assert isinstance(evaluate(webhook_events_sensor, database, instance), SkipReason)
    with database.connect() as conn:
        for i in range(5000, 5300):
            land(conn, contact(i))
    request = evaluate(webhook_events_sensor, database, instance)
    assert isinstance(request, RunRequest)

    # The daemon creates the run it asked for (then queues it; `benchmarks/ingest_stack.py`
    # counts the queue on the running stack); while it waits, deliveries keep arriving and
    # the sensor keeps ticking, yet asks for nothing more.
    waiting = instance.create_run_for_job(
        ingest_webhook_events, status=DagsterRunStatus.NOT_STARTED, tags=request.tags
    )
    for i in range(5300, 5310):
        with database.connect() as conn:
            land(conn, contact(i))
        skip = evaluate(webhook_events_sensor, database, instance)
        assert isinstance(skip, SkipReason) and "already waiting" in skip.skip_message

    # It starts (the coordinator moves it on); deliveries still flow, so a successor is
    # queued behind it, ready the moment it ends...
    instance.delete_run(waiting.run_id)
    instance.create_run_for_job(
        ingest_webhook_events, status=DagsterRunStatus.STARTED, tags=request.tags
    )
    assert isinstance(evaluate(webhook_events_sensor, database, instance), RunRequest)
    result = run_ingest(database, instance)
    assert result.success

    # ...and once traffic has stopped and nothing is pending, nothing is asked for.
    settle(database)
    assert isinstance(evaluate(webhook_events_sensor, database, instance), SkipReason)


def test_a_delivery_left_pending_by_a_failed_run_is_picked_up_by_the_next(
    database: Database, instance: DagsterInstance
) -> None:
    with database.connect() as conn:
        stuck = land(conn, contact(9000), received_at=datetime.now(UTC) - timedelta(hours=2))
    assert isinstance(evaluate(webhook_events_sensor, database, instance), RunRequest)
    assert run_ingest(database, instance).success
    with database.connect() as conn:
        assert conn.execute(
            "SELECT status FROM raw.webhook_events WHERE id = %s", (stuck,)
        ).fetchone() == ("processed",)


def test_dlq_sensor_launches_only_when_items_are_due(
    database: Database, instance: DagsterInstance
) -> None:
    idle = evaluate(dlq_retry_sensor, database, instance)
    assert isinstance(idle, SkipReason)
    with database.connect() as conn:
        event_id = land(conn, {"type": "Mystery", "locationId": "loc-1"})
        conn.execute(
            """INSERT INTO ops.sync_queue (location_id, source, webhook_event_id, error_class,
                   error, attempts, next_attempt_at) VALUES ('loc-1', 'webhook', %s, 'X', 'x', 1,
                   now() - interval '1 second')""",
            (event_id,),
        )
    due = evaluate(dlq_retry_sensor, database, instance)
    again = evaluate(dlq_retry_sensor, database, instance)
    assert isinstance(due, RunRequest) and due.run_key == again.run_key
