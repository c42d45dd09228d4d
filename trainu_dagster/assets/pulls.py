"""GHL streams pulled from the REST API into the raw tables, per registered studio.

Each asset is one stream; materialising it pulls every location in `app.locations` from
its durable cursor (see `trainu_dagster.ingest.pull`). The raw tables they write are the
same ones webhook ingest writes, with the same last-write-wins rules.
"""

from datetime import datetime

from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    Config,
    MaterializeResult,
    asset,
)

from trainu_dagster.ingest.apply import TABLES
from trainu_dagster.ingest.pull import (
    STREAMS,
    PullOptions,
    Stream,
    pull_stream,
    registered_locations,
)
from trainu_dagster.resources.ghl import GhlResource
from trainu_dagster.resources.postgres import PostgresResource

STREAM_ENTITIES = {
    "contacts": "contact",
    "appointments": "appointment",
    "messages": "message",
    "opportunities": "opportunity",
}


class PullConfig(Config):
    since: str | None = None  # ISO date: backfill from here instead of the cursor
    full: bool = False  # sweep contacts/opportunities from the start (daily reconcile)

    def options(self) -> PullOptions:
        since = datetime.fromisoformat(self.since) if self.since else None
        if since is not None and since.tzinfo is None:
            raise ValueError(f"since must carry a UTC offset, got {self.since!r}")
        return PullOptions(since=since, full=self.full)


def pull_asset(stream: Stream) -> AssetsDefinition:
    table = TABLES[STREAM_ENTITIES[stream]][0]

    @asset(
        key=["ghl_api", stream],
        group_name="ghl_pulls",
        kinds={"postgres"},
        description=f"GHL {stream} pulled from the REST API into raw.{table} "
        "(cursor per studio in raw.pull_state).",
    )
    def _pull(
        context: AssetExecutionContext,
        config: PullConfig,
        database: PostgresResource,
        ghl: GhlResource,
    ) -> MaterializeResult:
        options = config.options()
        totals: dict[str, int] = {}
        with ghl.client() as client, database.connect(autocommit=True) as conn:
            for location_id in registered_locations(conn):
                result = pull_stream(conn, client, location_id, stream, options=options)
                totals[location_id] = result.records
                context.log.info(
                    f"{location_id}: {result.records} {stream} in {result.pages} pages "
                    f"({result.applied} applied, {result.stale} older than stored, "
                    f"{result.rejected} rejected{', resumed' if result.resumed else ''})"
                )
        return MaterializeResult(
            metadata={"records": sum(totals.values()), "locations": len(totals)}
        )

    return _pull


ghl_pull_assets = [pull_asset(stream) for stream in STREAMS]
