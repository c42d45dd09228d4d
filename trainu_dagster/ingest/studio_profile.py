"""What GHL says about a studio itself: its timezone and its users (the trainers).

Read when a studio is first connected, before its history: the timezone decides every
local date TrainU computes (and reads the local times workflow webhooks send), and a
studio registered by hand (`trainu locations add`, default UTC) would otherwise keep a
guess. GHL's users become `app.trainers`, matched on their GHL user id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg

from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)

UPDATE_TIMEZONE = """
UPDATE app.locations SET timezone = %s
WHERE location_id = %s AND timezone IS DISTINCT FROM %s
"""
UPSERT_TRAINERS = """
INSERT INTO app.trainers AS t (location_id, ghl_user_id, name, email)
SELECT %s, r.ghl_user_id, r.name, r.email
FROM unnest(%s::text[], %s::text[], %s::text[]) AS r (ghl_user_id, name, email)
ON CONFLICT (location_id, ghl_user_id) DO UPDATE
SET name = excluded.name, email = excluded.email
WHERE (t.name, t.email) IS DISTINCT FROM (excluded.name, excluded.email)
"""


@dataclass(frozen=True)
class StudioProfile:
    timezone: str | None  # None: GHL named none TrainU knows, so the registered one stays
    trainers: int


def sync_studio(conn: psycopg.Connection, client: GhlClient, location_id: str) -> StudioProfile:
    """Take the studio's timezone and users from GHL; the caller owns the transaction."""
    location = client.location(location_id)
    zone = _known_zone(location.get("timezone"))
    if zone is None:
        log.warning("studio_timezone_unknown", location_id=location_id)
    else:
        conn.execute(UPDATE_TIMEZONE, (zone, location_id, zone))
    users = [user for user in client.users(location_id) if user.get("id")]
    conn.execute(
        UPSERT_TRAINERS,
        (
            location_id,
            [u["id"] for u in users],
            [_name(u) for u in users],
            [u.get("email") for u in users],
        ),
    )
    return StudioProfile(timezone=zone, trainers=len(users))


def _known_zone(name: Any) -> str | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return name


def _name(user: dict[str, Any]) -> str:
    full = user.get("name") or " ".join(
        part for part in (user.get("firstName"), user.get("lastName")) if part
    )
    return full or user.get("email") or user["id"]
