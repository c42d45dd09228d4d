"""`trainu pull`: GHL's REST API into the raw tables by hand, with a progress bar."""

from __future__ import annotations

from typing import Annotated

import typer

from trainu_dagster.cli.common import fail, get_settings, running_database, studio_ghl_client


def pull(
    since: Annotated[
        str | None,
        typer.Option(help="Backfill from this date (YYYY-MM-DD, UTC) instead of the cursors."),
    ] = None,
    location: Annotated[
        list[str] | None, typer.Option(help="Studio to pull (repeatable; default: all).")
    ] = None,
    stream: Annotated[
        list[str] | None,
        typer.Option(help="contacts, appointments, messages or opportunities (repeatable)."),
    ] = None,
    full: Annotated[bool, typer.Option(help="Sweep contacts/opportunities whole.")] = False,
) -> None:
    """Pull GHL data through the REST API into the raw tables, resuming from each cursor."""
    from datetime import UTC, datetime

    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from trainu_dagster.ghl.errors import GhlError
    from trainu_dagster.ingest.pull import (
        STREAMS,
        PullOptions,
        PullResult,
        pull_stream,
        registered_locations,
    )
    from trainu_dagster.messaging.inbound import record_pulled

    settings = get_settings()
    database = running_database(settings)
    unknown = set(stream or ()) - set(STREAMS)
    if unknown:
        raise fail(f"unknown stream(s) {sorted(unknown)}; choose from {', '.join(STREAMS)}")
    try:
        start = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None
    except ValueError:
        raise fail(f"--since {since!r} is not a date (YYYY-MM-DD)") from None
    with database.connect() as conn:
        known = registered_locations(conn)
    locations = location or known
    missing = set(locations) - set(known)
    if missing:
        raise fail(f"unknown studio(s) {sorted(missing)}: add them with `trainu locations add`")
    options = PullOptions(since=start, full=full)
    ended: list[str] = []  # streams whose pull GHL's answer ended early, and why
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[records]}"),
               TimeElapsedColumn())  # fmt: skip

    with (
        studio_ghl_client(settings, database) as client,
        database.connect(autocommit=True) as conn,
        Progress(*columns, transient=False) as progress,
    ):
        for location_id in locations:
            for name in stream or STREAMS:
                task = progress.add_task(f"{location_id} {name}", total=None, records=0)

                def advance(result: PullResult, task: TaskID = task) -> None:
                    progress.update(task, advance=1, records=f"{result.records} records")

                try:
                    result = pull_stream(conn, client, location_id, name, options=options,  # type: ignore[arg-type]
                                         on_page=advance, on_messages=record_pulled)  # fmt: skip
                except GhlError as exc:
                    raise fail(f"{location_id} {name}: {exc}; rerun to resume") from exc
                if result.ended is not None:  # GHL's answer was unreadable; the rest goes on
                    ended.append(f"{location_id} {name}: {result.ended}")
                progress.update(task, total=progress.tasks[task].completed)
    if ended:
        raise fail("ended early, each resumes from its cursor on the next pull:\n  "
                   + "\n  ".join(ended))  # fmt: skip
