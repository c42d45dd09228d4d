"""Product events: the immutable `app.events` log every component writes to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

if TYPE_CHECKING:
    from trainu_dagster.observability.analytics import ProductAnalytics


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
    return int(row[0])


def emit_event(
    conn: psycopg.Connection,
    event_type: str,
    *,
    actor: str,
    analytics: ProductAnalytics | None = None,
    location_id: str | None = None,
    actor_user_id: UUID | None = None,
    entity_type: str | None = None,
    entity_id: str | None = None,
    correlation_id: UUID | None = None,
    properties: dict[str, Any] | None = None,
) -> int:
    """`record_event`, then forward the same event to product analytics when configured.

    The forward is queued before the caller commits: PostHog is best effort and may see an
    event whose transaction later rolls back, while `app.events` stays the record of truth.
    The studio is the PostHog person, so dashboards group by location; system events with
    no location fall back to the actor.
    """
    event_id = record_event(
        conn,
        event_type,
        actor=actor,
        location_id=location_id,
        actor_user_id=actor_user_id,
        entity_type=entity_type,
        entity_id=entity_id,
        correlation_id=correlation_id,
        properties=properties,
    )
    if analytics is not None:
        context = {
            "event_id": event_id,
            "actor": actor,
            "location_id": location_id,
            "actor_user_id": actor_user_id,
            "entity_type": entity_type,
            "entity_id": entity_id,
            "correlation_id": correlation_id,
        }
        analytics.capture(
            event_type,
            distinct_id=location_id or actor,
            properties={
                **(properties or {}),
                **{key: value for key, value in context.items() if value is not None},
            },
        )
    return event_id
