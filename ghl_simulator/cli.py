"""`ghl-simulator` (or `python -m ghl_simulator`): the local GHL as a service of its own.

Run by `trainu up` when no GHL token is set, by the benchmarks and by people trying TrainU.
It reads TrainU's settings (ports, the state directory, the database for `--app-data`) but
TrainU never imports it: the simulator stands where GHL stands.

`--studios N` serves an agency of N studios under one companyId (`sim-studio`,
`sim-studio-2`...; default 1, the stack's world). TRAINU_GHL_TOKEN reads the first studio
only, like a Private Integration token; every studio is reachable through GHL's OAuth
(`oauth.py`, `oauth_routes.py`), whose Marketplace app is configured by flag or env:

- `--client-id` / GHL_SIMULATOR_CLIENT_ID (default `oauth.DEFAULT_CLIENT_ID`, `<appId>-...`)
- `--client-secret` / GHL_SIMULATOR_CLIENT_SECRET (default `oauth.DEFAULT_CLIENT_SECRET`)
- `--redirect-uri` (repeatable) / GHL_SIMULATOR_REDIRECT_URIS (space-separated); default
  the receiver's `http://127.0.0.1:<receiver port>/oauth/callback` and its `localhost` twin
- `--scopes` / GHL_SIMULATOR_SCOPES: the scopes the app may ask for (space-separated)
- `--token-lifetime` / GHL_SIMULATOR_TOKEN_LIFETIME: access tokens' seconds (GHL's 86399)
- `--webhook-url`: where the studios' webhooks and the app's INSTALL / UNINSTALL go, signed.

The consent page is `/oauth/chooselocation` (or `/v2/oauth/chooselocation`) on the
simulator's port; `POST /_sim/uninstall {"locationId": ...}` uninstalls the app there.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from ghl_simulator.live import run_simulator
from ghl_simulator.oauth import (
    ACCESS_TOKEN_SECONDS,
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_SCOPES,
    MarketplaceApp,
)
from trainu_dagster.db.server import DatabaseNotRunning, connect_database
from trainu_dagster.observability.logging import configure_logging
from trainu_dagster.settings import Settings, get_settings

# The studio the simulator plays unless told otherwise: the stack's, without a GHL token.
SIMULATED_LOCATION = "sim-studio"

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def simulator_key_path(settings: Settings) -> Path:
    """Its webhook signing key, kept in TrainU's state directory: the stack gives the public
    half to the receiver."""
    return settings.state_dir / "simulator" / "ed25519.pem"


@app.command()
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
    studios: Annotated[
        int, typer.Option(min=1, help="Studios in the agency (one companyId), each seeded anew.")
    ] = 1,
    client_id: Annotated[
        str, typer.Option(envvar="GHL_SIMULATOR_CLIENT_ID", help="The Marketplace app's id.")
    ] = DEFAULT_CLIENT_ID,
    client_secret: Annotated[
        str, typer.Option(envvar="GHL_SIMULATOR_CLIENT_SECRET", show_default=False)
    ] = DEFAULT_CLIENT_SECRET,
    redirect_uri: Annotated[
        list[str] | None,
        typer.Option(
            envvar="GHL_SIMULATOR_REDIRECT_URIS",
            help="A redirect URL registered for the app (repeatable). Default: the "
            "receiver's /oauth/callback.",
        ),
    ] = None,
    scopes: Annotated[
        str, typer.Option(envvar="GHL_SIMULATOR_SCOPES", help="Scopes the app may ask for.")
    ] = " ".join(DEFAULT_SCOPES),
    token_lifetime: Annotated[
        int,
        typer.Option(
            min=1, envvar="GHL_SIMULATOR_TOKEN_LIFETIME", help="Access tokens' lifetime, s."
        ),
    ] = ACCESS_TOKEN_SECONDS,
) -> None:
    """Run the local GHL simulator: a generated studio behind GHL's REST API, live activity
    and signed webhooks. It accepts TRAINU_GHL_TOKEN (a random one, printed, if unset); its
    webhook signing key lives in the state directory."""
    settings = get_settings()
    configure_logging(settings.log_level)
    try:
        database = connect_database(settings, start_embedded=False) if app_data else None
    except DatabaseNotRunning as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=1) from exc
    if settings.ghl_token is None:
        token = secrets.token_urlsafe(24)
        typer.echo(f"simulator token (set TRAINU_GHL_TOKEN to choose one): {token}")
    else:
        token = settings.ghl_token.get_secret_value()
    callbacks = [f"http://{host}:{settings.receiver_port}/oauth/callback"
                 for host in ("127.0.0.1", "localhost")]  # fmt: skip
    oauth_app = MarketplaceApp(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=tuple(redirect_uri or callbacks),
        scopes=tuple(scopes.split()),
    )
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
        database_url=database.url() if database else None,
        keep_path=settings.state_dir / "simulator" / f"{location}.studio" if keep else None,
        studios=studios,
        oauth_app=oauth_app,
        token_lifetime=token_lifetime,
    )
