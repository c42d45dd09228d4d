"""`trainu drafts`: a draft checked against the safety rules the pipeline applies."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from trainu_dagster.cli.common import command_group, fail, get_settings

app = command_group("Checking drafts as the pipeline does.")


@app.command("validate")
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
        raise fail(f"--channel must be SMS or Email, not {channel!r}")
    if purpose not in PURPOSES:
        raise fail(f"--purpose must be one of {', '.join(PURPOSES)}")
    domains = tuple(get_settings().allowed_link_domains)
    context = SafetyContext(channel=channel, purpose=purpose,  # type: ignore[arg-type]
                            client_first_name="",
                            allowed_link_domains=domains)  # fmt: skip
    verdict = validate_draft(text, context)
    typer.echo(json.dumps({"ok": verdict.ok, "failed": list(verdict.failed),
                           "details": verdict.details,
                           "sms_segments": verdict.sms_segments}))  # fmt: skip
