"""A studio TrainU has not seen before → its history is pulled, at once.

Every studio in `app.locations` gets a backfill (`trainu_dagster.ingest.backfill`); this
sensor launches one run per studio whose backfill is new, failed a while ago, or was
interrupted (running, with no run alive), and never a second while one is queued or going.
"""

from datetime import UTC, datetime

from dagster import (
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    RunsFilter,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from sensors.database import skip_without_database
from trainu_dagster.ingest import backfill
from trainu_dagster.jobs import LOCATION_TAG, backfill_ghl_history
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import get_settings

ALIVE = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


@sensor(
    job=backfill_ghl_history,
    minimum_interval_seconds=5,
    default_status=DefaultSensorStatus.RUNNING,
)
@skip_without_database
def studio_backfill_sensor(
    context: SensorEvaluationContext, database: PostgresResource
) -> list[RunRequest] | SkipReason:
    now = datetime.now(UTC)
    with database.connect() as conn:
        backfill.request_new(conn, history_months=get_settings().backfill_months, now=now)
        due = backfill.due(conn, now=now)
    runs = context.instance.get_runs(RunsFilter(job_name=backfill_ghl_history.name, statuses=ALIVE))
    alive = {run.tags.get(LOCATION_TAG) for run in runs}
    requests = [
        RunRequest(
            run_config={
                "ops": {"backfill_studio_history": {"config": {"location_id": studio.location_id}}}
            },
            tags={LOCATION_TAG: studio.location_id},
        )
        for studio in due
        if studio.location_id not in alive
    ]
    return requests or SkipReason("every studio's history has landed or is landing")
