"""Dead-letter items whose backoff has elapsed → a retry run."""

import hashlib
from datetime import UTC, datetime

from dagster import DefaultSensorStatus, RunRequest, SensorEvaluationContext, SkipReason, sensor

from sensors.database import skip_without_database
from trainu_dagster.ingest.dlq import due_ids
from trainu_dagster.jobs import retry_dead_letters
from trainu_dagster.resources.postgres import PostgresResource


@sensor(
    job=retry_dead_letters,
    minimum_interval_seconds=15,
    default_status=DefaultSensorStatus.RUNNING,
)
@skip_without_database
def dlq_retry_sensor(
    context: SensorEvaluationContext, database: PostgresResource
) -> RunRequest | SkipReason:
    with database.connect() as conn:
        due = due_ids(conn, now=datetime.now(UTC))
    if not due:
        return SkipReason("no dead-letter items due")
    # Same items at the same attempt count → same key: a re-evaluated tick launches nothing.
    digest = hashlib.sha256(repr(due).encode()).hexdigest()[:16]
    return RunRequest(run_key=f"dlq-retry:{digest}", tags={"trainu/dlq_items": str(len(due))})
