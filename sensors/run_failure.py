"""Every failed Dagster run becomes a `run_failed` product event, visible in sync health."""

from collections.abc import Mapping
from uuid import UUID

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from sensors.database import skip_without_database
from trainu_dagster.jobs import LOCATION_TAG
from trainu_dagster.observability.product_events import record_event
from trainu_dagster.resources.postgres import PostgresResource

CORRELATION_TAG = "trainu/correlation_id"


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING, minimum_interval_seconds=15)
@skip_without_database
def record_run_failure(context: RunFailureSensorContext, database: PostgresResource) -> None:
    run = context.dagster_run
    with database.connect() as conn:
        record_event(
            conn,
            "run_failed",
            actor="system:dagster",
            location_id=run.tags.get(LOCATION_TAG),
            entity_type="dagster_run",
            entity_id=run.run_id,
            correlation_id=_correlation_id(run.tags),
            properties={"job": run.job_name, "error": context.failure_event.message},
        )


def _correlation_id(tags: Mapping[str, str]) -> UUID | None:
    """The run's correlation id, when its tag holds a UUID. Anyone can tag a run: a tag
    that is not one is left out, where passing it on would fail the insert and lose the event."""
    try:
        return UUID(tags[CORRELATION_TAG])
    except (KeyError, ValueError):
        return None
