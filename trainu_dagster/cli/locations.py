"""`trainu locations`: the studios this install serves, and how far their pulls got."""

from __future__ import annotations

from typing import Annotated

import typer

from trainu_dagster.cli.common import fail, get_settings, running_database

app = typer.Typer(help="Studios (GHL locations) served by this install.", no_args_is_help=True)


@app.command("add")
def locations_add(
    location_id: Annotated[str, typer.Argument(help="GHL location (sub-account) id.")],
    name: Annotated[str, typer.Option(help="Studio name.")],
    timezone: Annotated[str, typer.Option(help="IANA timezone, e.g. Europe/London.")] = "UTC",
) -> None:
    """Register a studio."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail(f"unknown timezone {timezone!r}") from exc
    with running_database(get_settings()).connect() as conn:
        conn.execute(
            """
            INSERT INTO app.locations (location_id, name, timezone) VALUES (%s, %s, %s)
            ON CONFLICT (location_id)
            DO UPDATE SET name = excluded.name, timezone = excluded.timezone
            """,
            (location_id, name, timezone),
        )
    months = get_settings().backfill_months
    typer.echo(f"location {location_id} ({name}, {timezone}) saved")
    typer.echo(
        f"the running stack pulls its last {months} months of history now "
        "(TRAINU_BACKFILL_MONTHS); follow it with `trainu locations status`"
    )


@app.command("status")
def locations_status() -> None:
    """Each studio's history backfill, and each stream's last pull (and how far it got)."""
    from trainu_dagster.ingest import backfill

    with running_database(get_settings()).connect() as conn:
        backfills, streams = backfill.statuses(conn)
    if not backfills and not streams:
        typer.echo("no studios pulled yet")
    for b in backfills:
        when = b.finished_at or b.started_at or b.requested_at
        typer.echo(
            f"{b.location_id}\tbackfill {b.status} since {b.since:%Y-%m-%d}\t"
            f"streams done {len(b.streams_done)}/4\tattempts {b.attempts}\t"
            f"at {when:%Y-%m-%d %H:%M:%S}" + (f"\t{b.last_error}" if b.last_error else "")
        )
    for st in streams:
        share = f"{st.progress:.0%}" if st.progress is not None else "-"
        finished = f"{st.last_finished_at:%Y-%m-%d %H:%M:%S}" if st.last_finished_at else "-"
        typer.echo(
            f"{st.location_id}\t{st.stream}\t{st.last_status or 'never'}\t{share}\t"
            f"{st.records_pulled} records\tfinished {finished}"
            + (f"\t{st.last_error}" if st.last_error else "")
        )
