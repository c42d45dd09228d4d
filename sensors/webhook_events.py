"""Webhook deliveries are flowing → an ingest run is ready to apply them.

A run drains deliveries for minutes (see `trainu_dagster.ingest.drain`), so the sensor
only keeps one run queued behind the one in flight while deliveries flow: never more than
one running (the `ingest` lane's limit in deploy/stack/dagster.yaml) and one waiting, however many
deliveries arrive. The waiting run starts the moment the running one ends.
"""

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from sensors.database import skip_without_database
from sensors.runs import run_waiting
from trainu_dagster.ingest.drain import DrainLimits, deliveries_flowing
from trainu_dagster.jobs import ingest_webhook_events
from trainu_dagster.resources.postgres import PostgresResource


@sensor(
    job=ingest_webhook_events,
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
)
@skip_without_database
def webhook_events_sensor(
    context: SensorEvaluationContext, database: PostgresResource
) -> RunRequest | SkipReason:
    if run_waiting(context, ingest_webhook_events):
        return SkipReason("an ingest run is already waiting to start")
    with database.connect() as conn:
        flowing = deliveries_flowing(conn, within_seconds=DrainLimits.idle_seconds)
    if not flowing:
        return SkipReason("no webhook deliveries pending or arriving")
    return RunRequest()
