"""The webhook sensor evaluated with real sensor contexts, and the ingest job it launches
materialised for real."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import DagsterInstance, RunRequest, SkipReason, build_sensor_context, materialize

from sensors.dlq_retry import dlq_retry_sensor
from sensors.webhook_events import CORRELATION_TAG, webhook_events_sensor
from tests.ingest_helpers import land
from trainu_dagster.assets.raw import ghl_raw_tables
from trainu_dagster.db.server import Database
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


def evaluate(sensor, database: Database, instance: DagsterInstance, cursor: str | None):
    context = build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={"database": PostgresResource(database_url=database.url())},
    )
    result = sensor(context)
    outputs = list(result) if not isinstance(result, RunRequest | SkipReason) else [result]
    return outputs, context.cursor


def test_cursor_advances_run_keys_are_stable_and_empty_ticks_launch_nothing(
    database: Database, instance: DagsterInstance
) -> None:
    with database.connect() as conn:
        ids = [land(conn, contact(i)) for i in range(250)]
    first, cursor = evaluate(webhook_events_sensor, database, instance, None)
    requests = [r for r in first if isinstance(r, RunRequest)]
    assert [r.run_key for r in requests] == [
        f"webhook-events:{ids[0]}-{ids[99]}",
        f"webhook-events:{ids[100]}-{ids[199]}",
        f"webhook-events:{ids[200]}-{ids[249]}",
    ]
    assert cursor == str(ids[-1])
    assert len(requests[0].tags[CORRELATION_TAG].split(",")) == 100

    rerun, rerun_cursor = evaluate(webhook_events_sensor, database, instance, None)
    assert [r.run_key for r in rerun] == [r.run_key for r in requests]  # same tick, same keys
    assert rerun_cursor == cursor

    empty, same_cursor = evaluate(webhook_events_sensor, database, instance, cursor)
    assert len(empty) == 1 and isinstance(empty[0], SkipReason)
    assert same_cursor == cursor

    for request in requests:
        result = materialize(
            [ghl_raw_tables],
            instance=instance,
            run_config=request.run_config,
            resources={"database": PostgresResource(database_url=database.url())},
        )
        assert result.success
    with database.connect() as conn:
        assert conn.execute("SELECT count(*) FROM raw.ghl_contacts").fetchone() == (250,)
        assert conn.execute(
            "SELECT count(*) FROM raw.webhook_events WHERE status = 'processed'"
        ).fetchone() == (250,)
    # Re-running a batch (a retried run) processes nothing twice.
    again = materialize(
        [ghl_raw_tables],
        instance=instance,
        run_config=requests[0].run_config,
        resources={"database": PostgresResource(database_url=database.url())},
    )
    metadata = again.asset_materializations_for_node("ghl_raw_tables")[0].metadata
    assert metadata["events_processed"].value == 0


def test_late_commits_below_the_cursor_are_swept_up(
    database: Database, instance: DagsterInstance
) -> None:
    with database.connect() as conn:
        late = land(conn, contact(9000), received_at=datetime.now(UTC) - timedelta(minutes=5))
        newer = land(conn, contact(9001))
    outputs, cursor = evaluate(webhook_events_sensor, database, instance, str(newer))
    assert [r.run_key for r in outputs if isinstance(r, RunRequest)] == [
        f"webhook-events-sweep:{late}-{late}"
    ]
    assert cursor == str(newer)


def test_dlq_sensor_launches_only_when_items_are_due(
    database: Database, instance: DagsterInstance
) -> None:
    idle, _ = evaluate(dlq_retry_sensor, database, instance, None)
    assert isinstance(idle[0], SkipReason)
    with database.connect() as conn:
        event_id = land(conn, {"type": "Mystery", "locationId": "loc-1"})
        conn.execute(
            """INSERT INTO ops.sync_queue (location_id, source, webhook_event_id, error_class,
                   error, attempts, next_attempt_at) VALUES ('loc-1', 'webhook', %s, 'X', 'x', 1,
                   now() - interval '1 second')""",
            (event_id,),
        )
    due, _ = evaluate(dlq_retry_sensor, database, instance, None)
    again, _ = evaluate(dlq_retry_sensor, database, instance, None)
    assert isinstance(due[0], RunRequest) and due[0].run_key == again[0].run_key
