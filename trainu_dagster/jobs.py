"""Jobs the sensors launch and people run from the Dagster UI."""

from dagster import AssetSelection, OpExecutionContext, define_asset_job, job, op

from trainu_dagster.assets.raw import ghl_raw_tables
from trainu_dagster.ingest.retry import retry_due
from trainu_dagster.resources.postgres import PostgresResource

ingest_webhook_events = define_asset_job(
    "ingest_webhook_events",
    selection=AssetSelection.assets(ghl_raw_tables),
    description="Apply a range of landed webhook deliveries to the raw GHL tables.",
)


@op
def retry_due_dead_letters(context: OpExecutionContext, database: PostgresResource) -> None:
    with database.connect() as conn:
        reports = retry_due(conn)
    outcomes = [f"{r.item_id}:{r.outcome}" for r in reports]
    context.log.info(f"retried {len(reports)} dead-letter items: {', '.join(outcomes) or 'none'}")


@job(description="Retry dead-letter items whose backoff has elapsed.")
def retry_dead_letters() -> None:
    retry_due_dead_letters()
