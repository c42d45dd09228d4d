"""Approvals may come → a send run is up to send them within moments.

A send run serves for minutes (see `trainu_dagster.messaging.send_loop`): it sends what
is due, then waits for the next approval. So the sensor only keeps one run queued behind
the one in flight while a sender is wanted (messages due, or drafts waiting for a
decision): one running (the `send` lane's limit in deploy/stack/dagster.yaml) and one waiting, which
starts the moment the running one ends. Claims are exclusive in the database anyway, so
two runs could never send one message twice.
"""

from datetime import UTC, datetime

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from sensors.database import skip_without_database
from sensors.runs import run_waiting
from trainu_dagster.jobs import outbox_lease, send_messages
from trainu_dagster.messaging.send_loop import sender_wanted
from trainu_dagster.resources.postgres import PostgresResource


@sensor(job=send_messages, minimum_interval_seconds=2, default_status=DefaultSensorStatus.RUNNING)
@skip_without_database
def outbox_sensor(
    context: SensorEvaluationContext, database: PostgresResource
) -> RunRequest | SkipReason:
    if run_waiting(context, send_messages):
        return SkipReason("a send run is already waiting to start")
    with database.connect() as conn:
        wanted = sender_wanted(conn, now=datetime.now(UTC), lease=outbox_lease())
    if not wanted:
        return SkipReason("nothing approved is due and no draft awaits a decision")
    return RunRequest()
