"""The connections' rows: how each studio reaches GHL, its secrets sealed.

`app.ghl_connections` has one row per installation (migration 0024). Every secret goes in
sealed by a `SecretBox` and comes out opened only here, so no statement elsewhere ever
handles one, and nothing read for display (`statuses`) carries one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import psycopg
from psycopg import sql

from trainu_dagster.connections.secret_box import SecretBox, SecretUnreadable

# Every sealed column: (schema, table, column), each row keyed by `id`.
SEALED_COLUMNS = (
    ("app", "ghl_connections", "access_token_sealed"),
    ("app", "ghl_connections", "refresh_token_sealed"),
    ("app", "workflow_webhook_secrets", "secret_sealed"),
)


@dataclass(frozen=True)
class ActiveToken:
    connection_id: str
    kind: str
    token: str


@dataclass(frozen=True)
class ConnectionStatus:
    """What an owner or operator may see of a studio's connection; never a secret."""

    location_id: str
    kind: str | None  # None: no connection of its own
    status: str | None
    token_expires_at: datetime | None
    last_refreshed_at: datetime | None
    last_error: str | None


class NotConnected(Exception):
    """The studio has no connection that can be used now (none, or not active)."""


def save_private_integration(
    conn: psycopg.Connection, box: SecretBox, location_id: str, token: str
) -> None:
    """Connect a studio by its Private Integration token, or replace the one it has: the
    next request for it uses the new token (the old one stays valid at GHL during a
    rotate-later overlap, so nothing fails in between)."""
    conn.execute(
        """
        INSERT INTO app.ghl_connections
            (kind, location_id, status, access_token_sealed, last_refreshed_at)
        VALUES ('private_integration', %(location)s, 'active', %(sealed)s, now())
        ON CONFLICT (location_id) WHERE location_id IS NOT NULL DO UPDATE SET
            kind = 'private_integration', status = 'active',
            access_token_sealed = excluded.access_token_sealed, refresh_token_sealed = NULL,
            token_expires_at = NULL, scopes = '{}', last_refreshed_at = now(),
            last_error = NULL, updated_at = now()
        """,
        {"location": location_id, "sealed": box.seal(token)},
    )


def active_token(conn: psycopg.Connection, box: SecretBox, location_id: str) -> ActiveToken | None:
    """The studio's current token; None when it has no connection of its own. Raises
    `NotConnected` when it has one that is not active (needs_reauth, uninstalled)."""
    row = conn.execute(
        """SELECT id::text, kind, status, access_token_sealed FROM app.ghl_connections
           WHERE location_id = %s""",
        (location_id,),
    ).fetchone()
    if row is None:
        return None
    connection_id, kind, status, sealed = row
    if status != "active" or sealed is None:
        raise NotConnected(f"studio {location_id}'s GHL connection is {status}: reconnect it")
    token = box.open(sealed, what=f"app.ghl_connections {connection_id} access token")
    return ActiveToken(connection_id, kind, token)


def record_error(conn: psycopg.Connection, connection_id: str, error: str) -> None:
    """Keep what went wrong with a connection for its owner to see (never a secret)."""
    conn.execute(
        "UPDATE app.ghl_connections SET last_error = %s, updated_at = now() WHERE id = %s",
        (error, connection_id),
    )


def statuses(conn: psycopg.Connection) -> list[ConnectionStatus]:
    """Every studio and its connection's state, by location id."""
    rows = conn.execute(
        """SELECT l.location_id, c.kind, c.status, c.token_expires_at, c.last_refreshed_at,
                  c.last_error
           FROM app.locations l LEFT JOIN app.ghl_connections c USING (location_id)
           ORDER BY l.location_id"""
    ).fetchall()
    return [ConnectionStatus(*row) for row in rows]


@dataclass
class Resealed:
    resealed: int = 0
    unreadable: list[str] = field(default_factory=list)  # rows no key opens, by name


def reseal_all(connect: Callable[[], psycopg.Connection], box: SecretBox) -> Resealed:
    """Seal every stored secret again with the newest key (`connect`: autocommit
    connections); a secret no key opens is left as it is and named in the result.

    Each row is written in its own statement, and only if it still holds what was read, so
    a token replaced or refreshed meanwhile keeps what its writer sealed (with the newest
    key already). Running processes keep working throughout: they open with every key."""
    result = Resealed()
    with connect() as conn:
        for schema, table, column in SEALED_COLUMNS:
            names = {"t": sql.Identifier(schema, table), "c": sql.Identifier(column)}
            rows = conn.execute(
                sql.SQL("SELECT id::text, {c} FROM {t} WHERE {c} IS NOT NULL").format(**names)
            ).fetchall()
            update = sql.SQL("UPDATE {t} SET {c} = %s WHERE id = %s AND {c} = %s").format(**names)
            for row_id, sealed in rows:
                what = f"{schema}.{table} {row_id} {column}"
                try:
                    fresh = box.reseal(sealed, what=what)
                except SecretUnreadable:
                    result.unreadable.append(what)
                    continue
                result.resealed += conn.execute(update, (fresh, row_id, sealed)).rowcount
    return result
