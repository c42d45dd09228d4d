"""Approved messages are due → a send run.

One send run drains the whole outbox (a burst of approvals is one run), so the sensor
launches one only when none is waiting to start; the `send` lane (dagster.yaml) keeps
one running at a time. Claims are exclusive in the database anyway, so two runs could
never send one message twice.
"""

from datetime import UTC, datetime

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from sensors.webhook_events import WAITING
from trainu_dagster.jobs import outbox_lease, send_messages
from trainu_dagster.messaging.outbox import work_waiting
from trainu_dagster.resources.postgres import PostgresResource


@sensor(job=send_messages, minimum_interval_seconds=2, default_status=DefaultSensorStatus.RUNNING)
def outbox_sensor(
    context: SensorEvaluationContext, database: PostgresResource
) -> RunRequest | SkipReason:
    waiting = context.instance.get_runs_count(
        RunsFilter(job_name=send_messages.name, statuses=WAITING)
    )
    if waiting:
        return SkipReason("a send run is already waiting to start")
    with database.connect() as conn:
        due = work_waiting(conn, now=datetime.now(UTC), lease=outbox_lease())
    if not due:
        return SkipReason("nothing approved is due")
    return RunRequest(tags={"trainu/due_messages": str(due)})
