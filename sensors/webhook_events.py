"""New webhook deliveries → ingest runs, one per id range."""

from collections.abc import Iterator

from dagster import (
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from trainu_dagster.ingest.process import Batch, plan_batches, stragglers
from trainu_dagster.jobs import ingest_webhook_events
from trainu_dagster.resources.postgres import PostgresResource

CORRELATION_TAG = "trainu/correlation_ids"


def run_request(batch: Batch, *, kind: str) -> RunRequest:
    """The run key names the range, so re-evaluating a tick never launches it twice."""
    return RunRequest(
        run_key=f"{kind}:{batch.min_id}-{batch.max_id}",
        run_config={
            "ops": {"ghl_raw_tables": {"config": {"min_id": batch.min_id, "max_id": batch.max_id}}}
        },
        tags={
            CORRELATION_TAG: ",".join(batch.correlation_ids),
            "trainu/webhook_range": f"{batch.min_id}-{batch.max_id}",
        },
    )


@sensor(
    job=ingest_webhook_events,
    minimum_interval_seconds=2,
    default_status=DefaultSensorStatus.RUNNING,
)
def webhook_events_sensor(
    context: SensorEvaluationContext, database: PostgresResource
) -> Iterator[RunRequest | SkipReason]:
    cursor = int(context.cursor or 0)
    with database.connect() as conn:
        batches = plan_batches(conn, after_id=cursor)
        late = stragglers(conn, up_to_id=cursor)
    if late is not None:
        yield run_request(late, kind="webhook-events-sweep")
    for batch in batches:
        yield run_request(batch, kind="webhook-events")
    if batches:
        context.update_cursor(str(batches[-1].max_id))
    elif late is None:
        yield SkipReason("no new webhook events")
