"""`trainu dlq`: the sync dead-letter queue, inspected and resolved by hand."""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from trainu_dagster.cli.common import command_group, fail, get_settings, running_database

if TYPE_CHECKING:
    import psycopg

    from trainu_dagster.ingest.retry import RetryReport

app = command_group("The sync dead-letter queue: inspect, retry, repair.")


@app.command("list")
def dlq_list(
    status: Annotated[
        str | None, typer.Option(help="pending, retrying, dead, repaired, discarded")
    ] = None,
) -> None:
    """List dead-letter items (newest last)."""
    from trainu_dagster.ingest import dlq

    with running_database(get_settings()).connect() as conn:
        items = dlq.list_items(conn, status=status)
    if not items:
        typer.echo("no items")
    for item in items:
        due = item.next_attempt_at.isoformat(timespec="seconds") if item.next_attempt_at else "-"
        typer.echo(
            f"{item.id}\t{item.status}\tattempts {item.attempts}/{item.max_attempts}\t"
            f"next {due}\t{item.error_class}: {item.error[:80]}"
        )


@app.command("show")
def dlq_show(item_id: int) -> None:
    """Show one item with its error and the delivery it holds."""
    from trainu_dagster.ingest import dlq
    from trainu_dagster.ingest.process import load_event

    with running_database(get_settings()).connect() as conn:
        try:
            item = dlq.get(conn, item_id)
        except LookupError as exc:
            raise fail(str(exc)) from exc
        event = load_event(conn, item.webhook_event_id) if item.webhook_event_id else None
    for name in (
        "id",
        "status",
        "source",
        "location_id",
        "attempts",
        "max_attempts",
        "next_attempt_at",
        "error_class",
        "error",
        "correlation_id",
        "created_at",
        "resolved_at",
        "resolved_by",
        "resolution_note",
    ):
        typer.echo(f"{name + ':':17}{getattr(item, name)}")
    if event is not None:
        typer.echo(f"{'webhook event:':17}{event.id} ({event.route}, {event.status})")
        typer.echo(json.dumps(event.payload, indent=2, sort_keys=True))


def _dlq_transaction(
    item_id: int, action: Callable[[psycopg.Connection], RetryReport | None]
) -> None:
    from trainu_dagster.ingest.retry import RepairFailed

    with running_database(get_settings()).connect() as conn:
        try:
            report = action(conn)
        except (LookupError, RepairFailed) as exc:
            raise fail(str(exc)) from exc
        conn.commit()  # a failed attempt is recorded too
    if report is not None and report.outcome not in ("repaired", "skipped"):
        raise fail(f"item {item_id} still fails ({report.outcome}): {report.error}")
    typer.echo(f"item {item_id}: {report.outcome if report else 'discarded'}")


@app.command("retry")
def dlq_retry(item_id: int) -> None:
    """Attempt a pending or retrying item now (counts as an attempt)."""
    from trainu_dagster.ingest.retry import retry_item

    _dlq_transaction(item_id, lambda conn: retry_item(conn, item_id, by=f"cli:{getpass.getuser()}"))


@app.command("repair")
def dlq_repair(
    item_id: int,
    payload: Annotated[
        typer.FileText | None,
        typer.Option(help="Corrected JSON payload to process instead of the one received."),
    ] = None,
) -> None:
    """Process an item again after a fix (also dead ones); exactly once."""
    from trainu_dagster.ingest.retry import repair

    corrected = None
    if payload is not None:
        try:
            corrected = json.load(payload)
        except json.JSONDecodeError as exc:
            raise fail(f"--payload is not valid JSON: {exc}") from exc
        if not isinstance(corrected, dict):
            raise fail("--payload must be a JSON object")
    by = f"cli:{getpass.getuser()}"
    _dlq_transaction(item_id, lambda conn: repair(conn, item_id, by=by, payload=corrected))


@app.command("discard")
def dlq_discard(
    item_id: int, reason: Annotated[str, typer.Option(help="Why it will never be processed.")]
) -> None:
    """Give up on an item, with a reason."""
    from trainu_dagster.ingest.retry import discard

    by = f"cli:{getpass.getuser()}"
    _dlq_transaction(item_id, lambda conn: discard(conn, item_id, by=by, reason=reason))
