"""Where the GHL client gets the token for a location.

A Private Integration token reaches one sub-account and an OAuth access token one
location (or, an agency's, one company), so the client asks per request, never holding
one token for every studio. It knows nothing of where tokens are kept:
`trainu_dagster.connections` answers from the database, `StaticToken` from one string.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Protocol

import httpx


class Credentials(Protocol):
    """The token to send for a location, and word back when GHL refused it."""

    def token_for(self, location_id: str) -> str:
        """The bearer token for requests about `location_id` (raise if there is none)."""
        ...

    def refused(self, location_id: str, token: str) -> None:
        """GHL answered 401 to `token` for `location_id`: forget it, refresh it or mark the
        connection; the client asks `token_for` again and retries once if it changed."""
        ...


@dataclass(frozen=True)
class StaticToken:
    """One token for every location (`TRAINU_GHL_TOKEN`, a test's simulator token)."""

    token: str = field(repr=False)

    def token_for(self, location_id: str) -> str:
        return self.token

    def refused(self, location_id: str, token: str) -> None:
        """Nothing to refresh: the 401 stands."""


class LocationBearer(httpx.Auth):
    """One request's `Authorization: Bearer`, the token its location's credentials give.

    On a 401 it tells the credentials, and if they then give another token (a replaced
    Private Integration token, a refreshed access token) sends the request once more with
    it, within the same request budget slot; a second 401 is the answer."""

    def __init__(self, credentials: Credentials, location_id: str) -> None:
        self._credentials = credentials
        self._location_id = location_id

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self._credentials.token_for(self._location_id)
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code != 401:
            return
        self._credentials.refused(self._location_id, token)
        fresh = self._credentials.token_for(self._location_id)
        if fresh != token:
            request.headers["Authorization"] = f"Bearer {fresh}"
            yield request
