"""An agency of studios behind one GHL: one company, several locations, OAuth in front.

GHL's agencies (companies) hold sub-accounts (locations); a Marketplace app is installed on
either. Here each studio keeps its own API app (`api.create_simulator_app`: its own data,
its own per-location rate limit, its own faults and statistics), and `AgencyApp` sits in
front: the OAuth routes (`oauth_routes.py`) answer themselves, and every other request goes
to the studio its bearer token belongs to (`/_sim/*` to `?locationId=`, the first studio by
default), so a token for studio A asking for studio B gets studio A's 403, as today. One
studio with no OAuth in use behaves exactly as the single-studio app did.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from ghl_simulator.api import DEFAULT_RATE_LIMIT, DEFAULT_TOKEN, create_simulator_app
from ghl_simulator.oauth import (
    ACCESS_TOKEN_SECONDS,
    CODE_SECONDS,
    Agency,
    AuthorizationServer,
    MarketplaceApp,
)
from ghl_simulator.oauth_routes import oauth_routes
from ghl_simulator.ratelimit import RateLimit
from ghl_simulator.studio import Studio, default_company_id, generate_studio


def studio_ids(first: str, count: int) -> list[str]:
    """The agency's location ids: `first`, then `first-2`, `first-3`..."""
    return [first] + [f"{first}-{n}" for n in range(2, count + 1)]


def agency_plan(location_id: str, studios: int, seed: int) -> list[tuple[str, int, str]]:
    """(location id, seed, company id) of each studio: one company (the first studio's own,
    so one studio is the world `generate_studio` always made), studio n from seed + n."""
    company = default_company_id(location_id)
    return [(i, seed + n, company) for n, i in enumerate(studio_ids(location_id, studios))]


def generate_agency(
    location_id: str,
    studios: int,
    *,
    trainers: int = 5,
    clients: int = 200,
    days: int = 120,
    seed: int = 0,
    now: datetime | None = None,
) -> list[Studio]:
    """`studios` studios under one company, as `agency_plan` lays them out."""
    return [
        generate_studio(
            studio_id,
            trainers=trainers,
            clients=clients,
            days=days,
            seed=studio_seed,
            now=now,
            company_id=company,
        )  # fmt: skip
        for studio_id, studio_seed, company in agency_plan(location_id, studios, seed)
    ]


def agency_of(studios: Sequence[Studio]) -> Agency:
    """The company the studios share, as the consent page and installed-locations show it."""
    companies = {studio.location["companyId"] for studio in studios}
    if len(companies) != 1:
        raise ValueError("an agency's studios share one companyId")
    first = studios[0].location
    locations = {}
    for studio in studios:
        where = studio.location
        address = f"{where['address']}, {where['city']}, {where['state']} {where['postalCode']}"
        locations[studio.location_id] = {"name": where["name"], "address": address}
    return Agency(companies.pop(), f"{first['name'].split()[0]} Fitness Group", locations)


class AgencyApp:
    """The ASGI app: OAuth routes, then each request to its token's studio."""

    def __init__(self, studios: Sequence[Studio], server: AuthorizationServer,
                 rate_limit: RateLimit | None) -> None:  # fmt: skip
        self.server = server
        self.studios: dict[str, ASGIApp] = {
            studio.location_id: create_simulator_app(
                studio, authorize=server.authorize, rate_limit=rate_limit
            )
            for studio in studios
        }
        self._first = next(iter(self.studios.values()))
        routes = oauth_routes(server)
        self._own_paths = {route.path for route in routes if isinstance(route, Route)}
        self._oauth = Starlette(routes=routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self._own_paths:
            await self._oauth(scope, receive, send)
        else:
            await self._studio_app(scope)(scope, receive, send)

    def _studio_app(self, scope: Scope) -> ASGIApp:
        if scope["path"].startswith("/_sim/"):
            wanted = dict(parse_qsl(scope["query_string"].decode())).get("locationId")
        else:
            scheme, _, token = Headers(scope=scope).get("authorization", "").partition(" ")
            wanted = self.server.location_of(token) if scheme.lower() == "bearer" else None
        return self.studios.get(wanted or "", self._first)


def create_agency_app(
    studios: Sequence[Studio],
    *,
    app: MarketplaceApp | None = None,
    tokens: Mapping[str, str] | None = None,
    rate_limit: RateLimit | None = DEFAULT_RATE_LIMIT,
    token_lifetime: float = ACCESS_TOKEN_SECONDS,
    code_lifetime: float = CODE_SECONDS,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> AgencyApp:
    """GHL for an agency of `studios` with the Marketplace `app` installable on it.
    `tokens`: static bearer tokens (Private Integration tokens) -> location, by default
    `DEFAULT_TOKEN` for the first studio; `on_event`: each INSTALL / UNINSTALL body."""
    server = AuthorizationServer(
        app or MarketplaceApp(),
        agency_of(studios),
        static_tokens=tokens or {DEFAULT_TOKEN: studios[0].location_id},
        token_lifetime=token_lifetime,
        code_lifetime=code_lifetime,
        on_event=on_event,
    )
    return AgencyApp(studios, server, rate_limit)
