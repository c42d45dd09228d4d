"""`trainu simulate`: the local GHL simulator."""

from __future__ import annotations

from typing import Annotated

import typer

from trainu_dagster.cli.common import get_settings, running_database
from trainu_dagster.stack import SIMULATED_LOCATION, simulator_key_path


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
    database_url = running_database(settings).url() if app_data else None
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
