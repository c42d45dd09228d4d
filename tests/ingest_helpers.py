"""Land deliveries directly, as the receiver would, for tests of what happens after."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from trainu_dagster.db.server import Database
from trainu_dagster.ingest.process import process_pending


def land(
    conn: psycopg.Connection,
    payload: dict[str, Any],
    *,
    route: str = "marketplace",
    received_at: datetime | None = None,
) -> int:
    body = orjson.dumps(payload)
    row = conn.execute(
        """INSERT INTO raw.webhook_events (idempotency_key, location_id, route, event_type,
               signature_scheme, received_at, body, payload, correlation_id)
           VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id""",
        (
            "h:" + hashlib.sha256(body).hexdigest(),
            payload.get("locationId"),
            route,
            payload.get("type"),
            "ed25519" if route == "marketplace" else "hmac-sha256",
            received_at or datetime.now(UTC),
            body,
            Jsonb(payload),
            uuid.uuid4(),
        ),
    ).fetchone()
    assert row is not None
    return row[0]


def land_and_process(database: Database, payloads: list[dict[str, Any]]) -> None:
    """Land every payload, then apply them in landing order, as the ingest job would."""
    with database.connect() as conn, conn.transaction():
        for payload in payloads:
            land(conn, payload)
        while (summary := process_pending(conn)).claimed:
            assert summary.failed == 0
