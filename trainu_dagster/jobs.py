"""Jobs the sensors launch and people run from the Dagster UI."""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    OpExecutionContext,
    ScheduleDefinition,
    define_asset_job,
    job,
    op,
)

from trainu_dagster.assets.dbt import trainu_dbt_models
from trainu_dagster.assets.pulls import ghl_pull_assets
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


pull_ghl = define_asset_job(
    "pull_ghl",
    selection=AssetSelection.assets(*ghl_pull_assets),
    description="Pull every GHL stream of every registered studio from its cursor.",
)

# Webhooks bring changes within seconds; the pull catches what they missed.
pull_ghl_schedule = ScheduleDefinition(
    name="pull_ghl_every_15_minutes",
    job=pull_ghl,
    cron_schedule="*/15 * * * *",
    default_status=DefaultScheduleStatus.RUNNING,
)
# Keyset streams only see new records incrementally; once a day sweep them whole.
reconcile_ghl_schedule = ScheduleDefinition(
    name="reconcile_ghl_daily",
    job=pull_ghl,
    cron_schedule="30 3 * * *",
    run_config={"ops": {asset.op.name: {"config": {"full": True}} for asset in ghl_pull_assets}},
    default_status=DefaultScheduleStatus.RUNNING,
)

build_models = define_asset_job(
    "build_models",
    selection=AssetSelection.assets(trainu_dbt_models),
    description="dbt build of every model; its data tests read every row.",
    config={"ops": {trainu_dbt_models.op.name: {"config": {"test_all_rows": True}}}},
)
# Ingestion refreshes the models it touches and tests the rows it loaded; once a night,
# everything is rebuilt incrementally and tested whole, and the as-of-now marts (client
# activity, goal progress) move on a day even for a studio with no new data.
build_models_nightly = ScheduleDefinition(
    name="build_models_nightly",
    job=build_models,
    cron_schedule="0 4 * * *",
    default_status=DefaultScheduleStatus.RUNNING,
)
