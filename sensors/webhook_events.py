"""Webhook deliveries are flowing → an ingest run is ready to apply them.

A run drains deliveries for minutes (see `trainu_dagster.ingest.drain`), so the sensor
only keeps one run queued behind the one in flight while deliveries flow: never more than
one running (the `ingest` lane's limit in dagster.yaml) and one waiting, however many
deliveries arrive. The waiting run starts the moment the running one ends.
"""

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from trainu_dagster.ingest.drain import DrainLimits, deliveries_flowing
from trainu_dagster.jobs import ingest_webhook_events
from trainu_dagster.resources.postgres import PostgresResource

WAITING = [DagsterRunStatus.QUEUED, DagsterRunStatus.NOT_STARTED, DagsterRunStatus.STARTING]


@sensor(
    job=ingest_webhook_events,
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
)
def webhook_events_sensor(
    context: SensorEvaluationContext, database: PostgresResource
) -> RunRequest | SkipReason:
    waiting = context.instance.get_runs_count(
        RunsFilter(job_name=ingest_webhook_events.name, statuses=WAITING)
    )
    if waiting:
        return SkipReason("an ingest run is already waiting to start")
    with database.connect() as conn:
        flowing = deliveries_flowing(conn, within_seconds=DrainLimits.idle_seconds)
    if not flowing:
        return SkipReason("no webhook deliveries pending or arriving")
    return RunRequest()
