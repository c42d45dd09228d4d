"""Product events: the immutable `app.events` log every component writes to."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb


def record_event(
    conn: psycopg.Connection,
    event_type: str,
    *,
    actor: str,
    location_id: str | None = None,
    actor_user_id: UUID | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    correlation_id: UUID | None = None,
    properties: dict[str, Any] | None = None,
) -> int:
    """Append one event; returns its id. The caller owns the transaction."""
    row = conn.execute(
        """
        INSERT INTO app.events (event_type, actor, location_id, actor_user_id, entity_type,
                                entity_id, correlation_id, properties)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING id
        """,
        (
            event_type,
            actor,
            location_id,
            actor_user_id,
            entity_type,
            entity_id,
            correlation_id,
            Jsonb(properties or {}),
        ),
    ).fetchone()
    assert row is not None
    return row[0]
