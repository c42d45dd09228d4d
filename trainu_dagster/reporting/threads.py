"""The conversation with a client as GHL holds it (what was actually exchanged)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

import psycopg


@dataclass(frozen=True)
class ThreadLine:
    direction: str
    body: str
    at: datetime | None


def thread(conn: psycopg.Connection, client_id: UUID, *, limit: int = 5) -> list[ThreadLine]:
    """The last messages exchanged with the client in GHL, oldest first."""
    rows = conn.execute(
        """SELECT g.direction, g.payload->>'body', coalesce(g.date_added, g.source_updated_at)
           FROM app.clients c
           JOIN raw.ghl_messages g
             ON g.location_id = c.location_id AND g.contact_id = c.ghl_contact_id
           WHERE c.id = %s AND g.payload->>'body' IS NOT NULL
           ORDER BY coalesce(g.date_added, g.source_updated_at) DESC NULLS LAST LIMIT %s""",
        (client_id, limit),
    ).fetchall()
    return [ThreadLine(direction, body, at) for direction, body, at in reversed(rows)]
