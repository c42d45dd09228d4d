"""`trainu messages`: a client's message read as the pipeline reads it. Pure: no settings,
no database, no logging set up (`trainu_dagster.cli` skips it), so it starts at once."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from trainu_dagster.cli.common import command_group

app = command_group("Reading client messages as the pipeline does.")


@app.command("classify")
def messages_classify(
    text: Annotated[str, typer.Argument(help="A client's message, as received.")],
) -> None:
    """One JSON line: opt_out, escalation (category or null) and intent. No database."""
    from trainu_dagster.messaging.classify import classify_inbound

    verdict = classify_inbound(text)
    typer.echo(json.dumps({"opt_out": verdict.opt_out, "escalation": verdict.escalation,
                           "intent": verdict.intent}))  # fmt: skip
