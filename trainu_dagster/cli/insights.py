"""`trainu insights`: how well the risk score ranks, replayed over past days."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from trainu_dagster.cli.common import command_group, get_settings, running_database

app = command_group("Risk insights: how well the score ranks.")


@app.command("backtest")
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
    with running_database(settings).connect() as conn:
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
