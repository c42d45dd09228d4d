"""Jobs the sensors and schedules launch and people run from the Dagster UI.

Landing jobs (webhook ingest, pulls, the history backfill, dead-letter retries) are one op
each (every job runs on the in-process executor, set in `definitions.py`: a run is one
process, quick to start) and report the raw tables they changed as materializations,
which is what refreshes the dbt models. Each kind of landing run has its own lane
(`trainu/lane`, limited in `deploy/stack/dagster.yaml`), so one kind never fills the run slots the
others need.
"""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
from dagster import (
    AssetMaterialization,
    AssetSelection,
    Config,
    DefaultScheduleStatus,
    OpExecutionContext,
    ScheduleDefinition,
    define_asset_job,
    job,
    op,
)

from trainu_dagster.assets.dbt import trainu_dbt_models
from trainu_dagster.assets.raw import raw_materializations
from trainu_dagster.ingest import backfill
from trainu_dagster.ingest.drain import DrainLimits, drain
from trainu_dagster.ingest.process import IngestSummary
from trainu_dagster.ingest.pull import (
    STREAMS,
    PullOptions,
    PullResult,
    backfilled_locations,
    pull_stream,
)
from trainu_dagster.ingest.retry import retry_due
from trainu_dagster.messaging import outbox
from trainu_dagster.messaging.drafting import open_drafter
from trainu_dagster.messaging.drafts import react_to_deliveries
from trainu_dagster.messaging.inbound import record_delivered, record_pulled
from trainu_dagster.messaging.send_loop import ServeLimits, serve
from trainu_dagster.resources.ghl import GhlResource
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import get_settings
from trainu_dagster.shutdown import stop_requested

LANE = "trainu/lane"
LOCATION_TAG = "trainu/location_id"
# The sensors relaunch what is needed; Dagster's own retries would only queue twins.
NO_RETRIES = {"dagster/max_retries": 0}
STREAM_ENTITIES = {
    "contacts": "contact",
    "appointments": "appointment",
    "messages": "message",
    "opportunities": "opportunity",
}


# --- webhook ingest ------------------------------------------------------------------------


class IngestConfig(Config):
    max_seconds: float = DrainLimits.max_seconds
    idle_seconds: float = DrainLimits.idle_seconds
    report_seconds: float = DrainLimits.report_seconds


@op(
    description="Apply landed webhook deliveries to the raw GHL tables as they arrive, and "
    "draft what they trigger (confirmations, check-ins, replies) in the same run."
)
def apply_webhook_deliveries(
    context: OpExecutionContext, config: IngestConfig, database: PostgresResource
) -> None:
    def report(summary: IngestSummary) -> None:
        metadata = {
            "deliveries": summary.claimed,
            "flagged": summary.flagged,
            "unknown": summary.unknown,
            "failed": summary.failed,
        }
        for materialization in raw_materializations(summary.by_entity, metadata):
            context.log_event(materialization)
        context.log.info(
            f"{summary.claimed} deliveries: {summary.processed} applied ({summary.flagged} "
            f"flagged), {summary.unknown} of unknown types kept, {summary.failed} sent to the "
            "dead-letter queue"
        )

    limits = DrainLimits(
        max_seconds=config.max_seconds,
        idle_seconds=config.idle_seconds,
        report_seconds=config.report_seconds,
    )
    with open_drafter(get_settings()) as drafter:

        def draft(conn: psycopg.Connection, batch: IngestSummary) -> None:
            record_delivered(conn, batch.delivered)  # replies and delivery reports: threads
            outcome = react_to_deliveries(conn, batch.delivered, drafter, now=datetime.now(UTC))
            if outcome.created or outcome.needs_manual or outcome.escalated or outcome.withdrawn:
                context.log.info(
                    f"drafts: {len(outcome.created)} pending approval, "
                    f"{len(outcome.needs_manual)} need manual work, "
                    f"{len(outcome.escalated)} escalated, "
                    f"{outcome.withdrawn} withdrawn"
                )

        with stop_requested() as stop:
            drain(database.database().connect, limits, report, after_batch=draft, stop=stop)


@job(
    tags={LANE: "ingest", **NO_RETRIES},
    description="Apply webhook deliveries as they land, for a bounded time (the sensor keeps "
    "one run going while deliveries flow).",
)
def ingest_webhook_events() -> None:
    apply_webhook_deliveries()


# --- sending -------------------------------------------------------------------------------


def outbox_lease() -> timedelta:
    return timedelta(seconds=get_settings().outbox_claim_lease_seconds)


class SendConfig(Config):
    max_seconds: float = ServeLimits.max_seconds
    idle_seconds: float = ServeLimits.idle_seconds
    poll_seconds: float = ServeLimits.poll_seconds


@op(
    description="Send approved messages through GHL as they are approved and fall due, once "
    "each, re-checking quiet hours, caps, opt-outs and the kill switch at the moment of "
    "sending; up while approvals may come."
)
def send_due_messages(
    context: OpExecutionContext, config: SendConfig, database: PostgresResource, ghl: GhlResource
) -> None:
    def report(done: outbox.Report) -> None:
        context.log.info(
            f"{done.sent} sent ({done.reconciled} reconciled with GHL), {done.held} held, "
            f"{done.suppressed} suppressed, {done.stale} back to the inbox, {done.failed} "
            f"failed, {done.retrying} to retry, {done.released} released"
        )
        if done.paused:
            context.log.error(f"SEV1: the burst brake paused sending for {', '.join(done.paused)}")

    settings = get_settings()
    app_database = database.database()
    limits = ServeLimits(max_seconds=config.max_seconds, idle_seconds=config.idle_seconds,
                         poll_seconds=config.poll_seconds)  # fmt: skip
    with ghl.client(database) as client, stop_requested() as stop:
        serve(
            lambda: app_database.connect(autocommit=True), client, run_id=context.run_id,
            cap=settings.outbox_run_cap, lease=outbox_lease(), limits=limits, on_pass=report,
            approval_expiry=timedelta(hours=settings.approval_expiry_hours), stop=stop,
        )  # fmt: skip


@job(
    tags={LANE: "send", **NO_RETRIES},
    description="Send every approved message that is due, exactly once, and keep sending as "
    "approvals come (the outbox sensor keeps one run going while they may).",
)
def send_messages() -> None:
    send_due_messages()


# --- REST pulls ----------------------------------------------------------------------------


class PullConfig(Config):
    since: str | None = None  # ISO date-time with offset: pull from here instead of the cursor
    full: bool = False  # sweep contacts/opportunities from the start (daily reconcile)

    def options(self) -> PullOptions:
        since = datetime.fromisoformat(self.since) if self.since else None
        if since is not None and since.tzinfo is None:
            raise ValueError(f"since must carry a UTC offset, got {self.since!r}")
        return PullOptions(since=since, full=self.full)


def pulled(result: PullResult) -> Iterator[AssetMaterialization]:
    metadata: dict[str, int | str] = {"location_id": result.location_id, "stream": result.stream,
                "records": result.records, "pages": result.pages}  # fmt: skip
    yield from raw_materializations({STREAM_ENTITIES[result.stream]: result.applied}, metadata)


@op(description="Pull every GHL stream of every backfilled studio from its cursor.")
def pull_ghl_streams(
    context: OpExecutionContext,
    config: PullConfig,
    database: PostgresResource,
    ghl: GhlResource,
) -> None:
    options = config.options()
    with ghl.client(database) as client, database.connect(autocommit=True) as conn:
        for location_id in backfilled_locations(conn):
            for stream in STREAMS:
                result = pull_stream(conn, client, location_id, stream, options=options,
                                     on_messages=record_pulled)  # fmt: skip
                context.log.info(describe(result))
                for materialization in pulled(result):
                    context.log_event(materialization)


def describe(result: PullResult) -> str:
    if result.skipped:
        return f"{result.location_id} {result.stream}: skipped, another pull of it is running"
    if result.ended is not None:
        return (
            f"{result.location_id} {result.stream}: ended early, {result.ended}; resumes next run"
        )
    return (
        f"{result.location_id} {result.stream}: {result.records} records in {result.pages} "
        f"pages ({result.applied} applied, {result.stale} older than stored, "
        f"{result.rejected} rejected{', resumed' if result.resumed else ''})"
    )


@job(
    tags={LANE: "pull", **NO_RETRIES},
    description="Pull GHL through the REST API: what webhooks missed.",
)
def pull_ghl() -> None:
    pull_ghl_streams()


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
    run_config={"ops": {"pull_ghl_streams": {"config": {"full": True}}}},
    default_status=DefaultScheduleStatus.RUNNING,
)


# --- a new studio's history ----------------------------------------------------------------


class BackfillConfig(Config):
    location_id: str


@op(description="Pull a newly seen studio's history (resumes where an earlier attempt stopped).")
def backfill_studio_history(
    context: OpExecutionContext,
    config: BackfillConfig,
    database: PostgresResource,
    ghl: GhlResource,
) -> None:
    def page(result: PullResult) -> None:
        share = f", {result.progress:.0%} of its range" if result.progress is not None else ""
        context.log.info(
            f"{result.location_id} {result.stream}: {result.records} records so far "
            f"({result.pages} pages{share})"
        )

    def stream_done(result: PullResult) -> None:
        context.log.info(describe(result))
        for materialization in pulled(result):
            context.log_event(materialization)

    with ghl.client(database) as client, database.connect(autocommit=True) as conn:
        since = backfill.load(conn, config.location_id).since
        context.log.info(f"{config.location_id}: pulling history since {since:%Y-%m-%d}")
        backfill.run_backfill(conn, client, config.location_id, on_page=page,
                              on_stream=stream_done, on_messages=record_pulled)  # fmt: skip


@job(
    tags={LANE: "backfill", **NO_RETRIES},
    description="A studio's history, pulled when TrainU first sees the studio.",
)
def backfill_ghl_history() -> None:
    backfill_studio_history()


# --- dead letters ----------------------------------------------------------------------------


@op
def retry_due_dead_letters(context: OpExecutionContext, database: PostgresResource) -> None:
    with database.connect() as conn:
        reports = retry_due(conn, now=datetime.now(UTC))
    outcomes = [f"{r.item_id}:{r.outcome}" for r in reports]
    context.log.info(f"retried {len(reports)} dead-letter items: {', '.join(outcomes) or 'none'}")


@job(
    tags={LANE: "retry", **NO_RETRIES},
    description="Retry dead-letter items whose backoff has elapsed.",
)
def retry_dead_letters() -> None:
    retry_due_dead_letters()


# --- models ----------------------------------------------------------------------------------

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
