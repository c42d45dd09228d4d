"""Raw GHL entity tables, materialised by applying landed webhook deliveries."""

from collections.abc import Iterator

from dagster import (
    AssetExecutionContext,
    AssetSpec,
    Config,
    MaterializeResult,
    multi_asset,
)

from trainu_dagster.ingest.apply import TABLES
from trainu_dagster.ingest.process import process_pending
from trainu_dagster.resources.postgres import PostgresResource

# entity name in parsed events -> the raw table it lands in
RAW_TABLES = {entity: table for entity, (table, _, _) in TABLES.items()}
# written with the appointments, in the same transaction (see ingest.apply)
START_TIMES = "ghl_appointment_start_times"


class WebhookBatch(Config):
    """An id range of `raw.webhook_events`; only still-pending events in it are processed."""

    min_id: int
    max_id: int


@multi_asset(
    specs=[
        AssetSpec(
            ["raw", table],
            group_name="raw",
            kinds={"postgres"},
            description=f"Latest GHL {entity} state, last write wins by source time.",
        )
        for entity, table in RAW_TABLES.items()
    ]
    + [
        AssetSpec(
            ["raw", START_TIMES],
            group_name="raw",
            kinds={"postgres"},
            description="Every start time each GHL appointment was seen at (reschedules).",
        )
    ],
    name="ghl_raw_tables",
)
def ghl_raw_tables(
    context: AssetExecutionContext, config: WebhookBatch, database: PostgresResource
) -> Iterator[MaterializeResult]:
    with database.connect() as conn:
        summary = process_pending(conn, min_id=config.min_id, max_id=config.max_id)
    context.log.info(
        f"events {config.min_id}..{config.max_id}: {summary.processed} processed "
        f"({summary.flagged} flagged), {summary.failed} sent to the dead-letter queue"
    )
    for entity, table in [*RAW_TABLES.items(), ("appointment", START_TIMES)]:
        yield MaterializeResult(
            asset_key=["raw", table],
            metadata={
                "changes": summary.by_entity[entity],
                "events_processed": summary.processed,
                "events_failed": summary.failed,
            },
        )
