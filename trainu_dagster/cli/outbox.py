"""`trainu outbox`: approved messages on their way out, and the kill switch."""

from __future__ import annotations

import typer

from trainu_dagster.cli.common import (
    command_group,
    fail,
    get_settings,
    running_database,
    studio_ghl_client,
)

app = command_group(
    "Approved messages on their way out through GHL: inspect, pause, resume, send one."
)


@app.command("status")
def outbox_status() -> None:
    """Per studio: sending or paused, due, held, in flight, sent and failed in 24 h."""
    from datetime import UTC, datetime

    from trainu_dagster.messaging import outbox

    with running_database(get_settings()).connect() as conn:
        studios = outbox.status(conn, now=datetime.now(UTC))
    if not studios:
        typer.echo("no studios")
    for studio in studios:
        state = (
            f"PAUSED ({studio['sending_paused_reason']})"
            if studio["sending_paused_at"]
            else "sending"
        )
        typer.echo(
            f"{studio['location_id']}\t{state}\tdue {studio['due']}\theld {studio['held']}\t"
            f"in flight {studio['in_flight']}\tsent 24h {studio['sent_24h']}\t"
            f"failed 24h {studio['failed_24h']}"
        )


def _outbox_pause(location_id: str, paused: bool) -> None:
    from trainu_dagster.messaging import outbox

    with running_database(get_settings()).connect() as conn:
        if (
            conn.execute(
                "SELECT 1 FROM app.locations WHERE location_id = %s", (location_id,)
            ).fetchone()
            is None
        ):
            raise fail(f"unknown studio {location_id!r}")
        changed = outbox.set_paused(conn, location_id, paused, "paused by an operator")
    word = "paused" if paused else "sending again"
    typer.echo(f"{location_id}: {word}" if changed else f"{location_id}: already {word}")


@app.command("pause")
def outbox_pause(location_id: str) -> None:
    """Stop all sending for a studio at once (the kill switch); nothing approved is lost."""
    _outbox_pause(location_id, True)


@app.command("resume")
def outbox_resume(location_id: str) -> None:
    """Let a paused studio send again (after the burst brake, once someone has looked)."""
    _outbox_pause(location_id, False)


@app.command("send-now")
def outbox_send_now(message_id: str) -> None:
    """Check one approved message against every rule now and send it if they allow."""
    from datetime import timedelta
    from uuid import UUID

    from trainu_dagster.messaging import outbox

    settings = get_settings()
    try:
        wanted = UUID(message_id)
    except ValueError:
        raise fail(f"{message_id!r} is not a message id") from None
    database = running_database(settings)
    with database.connect() as conn:
        found = conn.execute(
            "SELECT status, held_reason FROM app.messages WHERE id = %s", (wanted,)
        ).fetchone()
        if found is None:
            raise fail(f"no message {message_id}")
        if found[0] != "approved":
            raise fail(f"message {message_id} is {found[0]}: only approved messages are sent")
        conn.execute("UPDATE app.messages SET held_until = NULL WHERE id = %s", (wanted,))

    with (
        studio_ghl_client(settings, database) as client,
        database.connect(autocommit=True) as conn,
    ):
        report = outbox.drain(
            conn, client, run_id="cli:send-now", cap=1, only=wanted,
            approval_expiry=timedelta(hours=settings.approval_expiry_hours),
            lease=timedelta(seconds=settings.outbox_claim_lease_seconds),
        )  # fmt: skip
        after = conn.execute(
            "SELECT status, coalesce(suppressed_reason, failed_reason), held_reason "
            "FROM app.messages WHERE id = %s", (wanted,),
        ).fetchone()  # fmt: skip
        assert after is not None  # found above; messages are never deleted
        status, reason, held = after
    detail = reason or held
    typer.echo(f"{message_id}: {status}" + (f" ({detail})" if detail and status != "sent" else ""))
    if report.sent == 0 and status == "approved" and held:
        raise typer.Exit(code=2)  # held by a rule (quiet hours, a cap): not sent yet
