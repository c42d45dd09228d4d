"""The `trainu` command line: database lifecycle, accounts, and the local stack.

One module per command group. Each command imports what it needs when it runs, so `trainu
--help` and a pure command like `messages classify` start at once instead of loading
SQLAlchemy, Alembic, Dagster and the stack first (tests/test_architecture.py keeps it so).
"""

from __future__ import annotations

import typer

from trainu_dagster.cli import (
    db,
    dlq,
    drafts,
    insights,
    locations,
    messages,
    outbox,
    pull,
    secrets,
    services,
    users,
    webhooks,
)

# Groups whose commands log nothing and read no settings: logging is not set up for them.
PURE_GROUPS = frozenset({"messages"})

app = typer.Typer(
    help="TrainU: GHL data in, show-rates and approved outreach out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # as every group's (cli/common.command_group): no Rich at start-up
)


@app.callback()
def _logging(ctx: typer.Context) -> None:
    if ctx.invoked_subcommand in PURE_GROUPS:
        return
    from trainu_dagster.observability.logging import configure_logging
    from trainu_dagster.settings import get_settings

    configure_logging(get_settings().log_level)


app.command("receive")(services.receive)
app.command("pull")(pull.pull)
app.command("up")(services.up)
app.add_typer(db.app, name="db")
app.add_typer(dlq.app, name="dlq")
app.add_typer(webhooks.app, name="webhooks")
app.add_typer(users.app, name="users")
app.add_typer(locations.app, name="locations")
app.add_typer(insights.app, name="insights")
app.add_typer(messages.app, name="messages")
app.add_typer(drafts.app, name="drafts")
app.add_typer(outbox.app, name="outbox")
app.add_typer(secrets.app, name="secrets")
