"""Each studio's GHL token, read from its connection, for the GHL client.

`DatabaseCredentials` answers the client's `token_for(location)` from the studio's active
connection, opened and kept for a short while (a pull asks for every request). A studio
without a connection of its own gets `TRAINU_GHL_TOKEN`, the one-studio shortcut. A token
replaced in the database (`trainu locations set-token`, GHL's rotate-later overlap) is used
once the short cache lapses, or at once when GHL refuses the old one: a 401 drops the
cached token, and the client retries with the stored one if it changed. A 401 on the
token still stored is kept as the connection's last error for its owner to see.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

from trainu_dagster.connections import store
from trainu_dagster.connections.secret_box import SecretBox, secret_box
from trainu_dagster.ghl.errors import GhlError
from trainu_dagster.settings import Settings

CACHE_SECONDS = 30.0


@dataclass(frozen=True)
class _Cached:
    token: str = field(repr=False)
    connection_id: str | None  # None: the settings' shortcut token
    read_at: float


class DatabaseCredentials:
    """Per-location tokens from `app.ghl_connections` (`connect`: autocommit connections
    to the application database)."""

    def __init__(
        self,
        connect: Callable[[], psycopg.Connection],
        box: SecretBox,
        *,
        fallback: str | None = None,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._connect = connect
        self._box = box
        self._fallback = fallback
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cached: dict[str, _Cached] = {}
        self._lock = threading.Lock()

    def token_for(self, location_id: str) -> str:
        with self._lock:
            cached = self._cached.get(location_id)
        if cached is not None and self._clock() - cached.read_at < self._cache_seconds:
            return cached.token
        cached = self._read(location_id)
        with self._lock:
            self._cached[location_id] = cached
        return cached.token

    def refused(self, location_id: str, token: str) -> None:
        with self._lock:
            self._cached.pop(location_id, None)
        current = self._read(location_id)
        if current.token == token and current.connection_id is not None:
            with self._connect() as conn:
                store.record_error(conn, current.connection_id, "GHL refused the token (401)")

    def _read(self, location_id: str) -> _Cached:
        try:
            with self._connect() as conn:
                found = store.active_token(conn, self._box, location_id)
        except store.NotConnected as exc:
            raise GhlError(401, str(exc)) from None
        if found is not None:
            return _Cached(found.token, found.connection_id, self._clock())
        if self._fallback is None:
            raise GhlError(
                401,
                f"studio {location_id} has no GHL connection: give it its token with "
                "`trainu locations set-token`, or set TRAINU_GHL_TOKEN",
            )
        return _Cached(self._fallback, None, self._clock())


def database_credentials(
    settings: Settings, connect: Callable[[], psycopg.Connection]
) -> DatabaseCredentials:
    """Credentials from the connections in the database, `TRAINU_GHL_TOKEN` for the rest."""
    fallback = settings.ghl_token.get_secret_value() if settings.ghl_token else None
    return DatabaseCredentials(connect, secret_box(settings), fallback=fallback)
