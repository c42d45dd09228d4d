"""`trainu webhooks`: landed deliveries counted, and the unknown ones parsed again."""

from __future__ import annotations

from typing import Annotated

import typer

from trainu_dagster.cli.common import command_group, fail, get_settings, running_database

app = command_group("Landed webhook deliveries: counts by status and type, reprocessing.")


@app.command("status")
def webhooks_status() -> None:
    """Deliveries by status and event type (`unknown`: a type TrainU cannot parse yet)."""
    from trainu_dagster.ingest.process import delivery_counts

    with running_database(get_settings()).connect() as conn:
        counts = delivery_counts(conn)
    if not counts:
        typer.echo("no deliveries")
    for status, event_type, count in counts:
        typer.echo(f"{status}\t{event_type or '-'}\t{count}")


@app.command("reprocess")
def webhooks_reprocess(
    event_type: Annotated[str, typer.Option("--type", help="The event type, e.g. LCEmailStats.")],
) -> None:
    """Parse again the deliveries of a type kept as unknown (after a parser for it landed)."""
    from trainu_dagster.ingest.process import reprocess_unknown

    with running_database(get_settings()).connect() as conn:
        summary = reprocess_unknown(conn, event_type)
    if not summary.claimed:
        raise fail(f"no deliveries of type {event_type!r} are kept as unknown")
    typer.echo(
        f"{summary.claimed} {event_type} deliveries: {summary.processed} applied "
        f"({summary.flagged} flagged), {summary.unknown} still unknown, "
        f"{summary.failed} sent to the dead-letter queue"
    )
