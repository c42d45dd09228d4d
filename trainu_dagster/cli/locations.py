"""`trainu locations`: the studios this install serves, how each reaches GHL, and how far
their pulls got."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from trainu_dagster.cli.common import command_group, fail, get_settings, running_database

app = command_group("Studios (GHL locations) served by this install.")


STDIN_HELP = (
    "Read the studio's GHL Private Integration token from stdin (never from the command line, "
    "where the shell history and `ps` would keep it)."
)


CHECK_HELP = "Ask GHL whether the token reaches this location before storing it."


def _token_from_stdin(location_id: str, *, check: bool) -> str:
    """The token piped in, refused (and stored nowhere) if GHL does not let it read the
    location: a token of another sub-account, or a revoked one."""
    import httpx

    from trainu_dagster.ghl.client import GhlClient
    from trainu_dagster.ghl.errors import GhlError

    token = sys.stdin.readline().strip()
    if not token:
        raise fail("no token on stdin: pipe the Private Integration token in")
    if check:
        base_url = get_settings().ghl_base_url
        try:
            with GhlClient(token, base_url=base_url, max_attempts=2) as ghl:
                ghl.location(location_id)
        except GhlError as exc:
            raise fail(f"GHL refused this token for location {location_id} ({exc}); "
                       "nothing stored") from None  # fmt: skip
        except httpx.TransportError as exc:
            raise fail(f"could not reach GHL at {base_url} to check the token ({exc}); "
                       "nothing stored (--no-check stores it unchecked)") from None  # fmt: skip
    return token


@app.command("add")
def locations_add(
    location_id: Annotated[str, typer.Argument(help="GHL location (sub-account) id.")],
    name: Annotated[str, typer.Option(help="Studio name.")],
    timezone: Annotated[str, typer.Option(help="IANA timezone, e.g. Europe/London.")] = "UTC",
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help=STDIN_HELP)] = False,
    check: Annotated[bool, typer.Option(help=CHECK_HELP)] = True,
) -> None:
    """Register a studio (with its own Private Integration token, from stdin)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from trainu_dagster.connections import secret_box, store

    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise fail(f"unknown timezone {timezone!r}") from exc
    token = _token_from_stdin(location_id, check=check) if token_stdin else None
    settings = get_settings()
    with running_database(settings).connect() as conn:
        conn.execute(
            """
            INSERT INTO app.locations (location_id, name, timezone) VALUES (%s, %s, %s)
            ON CONFLICT (location_id)
            DO UPDATE SET name = excluded.name, timezone = excluded.timezone
            """,
            (location_id, name, timezone),
        )
        if token is not None:
            store.save_private_integration(
                conn, secret_box.secret_box(settings), location_id, token
            )
    months = settings.backfill_months
    typer.echo(f"location {location_id} ({name}, {timezone}) saved")
    if token is not None:
        typer.echo(f"{location_id} connects to GHL with its own Private Integration token")
    typer.echo(
        f"the running stack pulls its last {months} months of history now "
        "(TRAINU_BACKFILL_MONTHS); follow it with `trainu locations status`"
    )


@app.command("set-token")
def locations_set_token(
    location_id: Annotated[str, typer.Argument(help="GHL location (sub-account) id.")],
    token_stdin: Annotated[bool, typer.Option("--token-stdin", help=STDIN_HELP)] = False,
    check: Annotated[bool, typer.Option(help=CHECK_HELP)] = True,
) -> None:
    """Give a studio its Private Integration token, or replace it (running pulls and sends
    use the new one within a minute, or at once if GHL refuses the old one: no restart)."""
    from trainu_dagster.connections import secret_box, store

    if not token_stdin:
        raise fail("pass --token-stdin and pipe the token in (never on the command line)")
    settings = get_settings()
    database = running_database(settings)
    with database.connect() as conn:
        known = conn.execute("SELECT 1 FROM app.locations WHERE location_id = %s", (location_id,))
        if known.fetchone() is None:
            raise fail(f"unknown studio {location_id!r}: add it with `trainu locations add`")
    token = _token_from_stdin(location_id, check=check)
    with database.connect() as conn:
        store.save_private_integration(conn, secret_box.secret_box(settings), location_id, token)
    typer.echo(f"{location_id}: Private Integration token saved")


@app.command("status")
def locations_status() -> None:
    """Each studio's GHL connection, its history backfill, and each stream's last pull."""
    from trainu_dagster.connections import store
    from trainu_dagster.ingest import backfill

    settings = get_settings()
    with running_database(settings).connect() as conn:
        connections = store.statuses(conn)
        backfills, streams = backfill.statuses(conn)
    shortcut = "TRAINU_GHL_TOKEN" if settings.ghl_token else "not connected"
    for c in connections:
        typer.echo(
            f"{c.location_id}	connection {c.kind or shortcut}"
            + (f" {c.status}" if c.status else "")
            + (f"	expires {c.token_expires_at:%Y-%m-%d %H:%M:%S}" if c.token_expires_at else "")
            + (f"	refreshed {c.last_refreshed_at:%Y-%m-%d %H:%M:%S}" if c.last_refreshed_at
               else "")
            + (f"	{c.last_error}" if c.last_error else "")
        )  # fmt: skip
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
