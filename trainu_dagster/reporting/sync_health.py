"""Sync health for the owner: are GHL's webhooks arriving and being applied, are the
pulls succeeding, what is stuck in the dead-letter queue, which Dagster runs failed.
Reads go through the owner's RLS-bound connection (raw and ops rows are owner-only)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd
import psycopg

from trainu_dagster.ingest import dlq
from trainu_dagster.reporting import query_frame


def webhook_lag(conn: psycopg.Connection, *, since: datetime) -> pd.DataFrame:
    """Per hour: deliveries received, and seconds from received to applied (p50, p95)."""
    return query_frame(
        conn,
        """SELECT date_trunc('hour', received_at) AS hour, count(*)::int AS deliveries,
                  count(*) FILTER (WHERE status = 'pending')::int AS waiting,
                  round(percentile_cont(0.5) WITHIN GROUP (ORDER BY
                      extract(epoch FROM processed_at - received_at))::numeric, 2)::float
                      AS p50_lag_s,
                  round(percentile_cont(0.95) WITHIN GROUP (ORDER BY
                      extract(epoch FROM processed_at - received_at))::numeric, 2)::float
                      AS p95_lag_s
           FROM raw.webhook_events WHERE received_at >= %(since)s
           GROUP BY 1 ORDER BY 1""",
        {"since": since},
    )


def deliveries(conn: psycopg.Connection, *, since: datetime) -> pd.DataFrame:
    """Deliveries by status and event type; flagged ones (and unknown types) need a look."""
    return query_frame(
        conn,
        """SELECT status, coalesce(event_type, 'unknown') AS event_type,
                  count(*)::int AS deliveries, max(received_at) AS last_received_at
           FROM raw.webhook_events WHERE received_at >= %(since)s
           GROUP BY 1, 2 ORDER BY status <> 'flagged', status, 3 DESC""",
        {"since": since},
    )


def pulls(conn: psycopg.Connection) -> pd.DataFrame:
    """Per stream: the last pull's outcome and when each last succeeded."""
    return query_frame(
        conn,
        """SELECT stream, last_status, last_finished_at, watermark, records_pulled::int,
                  last_error
           FROM raw.pull_state ORDER BY stream""",
        {},
    )


def dead_letters(conn: psycopg.Connection) -> list[dlq.QueueItem]:
    """Open dead-letter items, newest first."""
    items = [i for i in dlq.list_items(conn) if i.status in dlq.OPEN_STATUSES]
    return sorted(items, key=lambda i: i.created_at, reverse=True)


def event_payloads(
    conn: psycopg.Connection, event_ids: list[int | None]
) -> dict[int, dict[str, Any]]:
    """The webhook payloads behind dead-letter items, to start a repair from."""
    rows = conn.execute(
        "SELECT id, payload FROM raw.webhook_events WHERE id = ANY(%s)",
        ([i for i in event_ids if i is not None],),
    ).fetchall()
    return dict(rows)


def failed_runs(conn: psycopg.Connection, *, since: datetime, dagster_url: str) -> pd.DataFrame:
    """Dagster runs that failed (recorded by the run-failure sensor), with their UI link."""
    frame = query_frame(
        conn,
        """SELECT occurred_at, properties->>'job' AS job, entity_id AS run_id,
                  left(properties->>'error', 300) AS error
           FROM app.events WHERE event_type = 'run_failed' AND occurred_at >= %(since)s
           ORDER BY occurred_at DESC LIMIT 50""",
        {"since": since},
    )
    frame["link"] = [f"{dagster_url}/runs/{run_id}" for run_id in frame["run_id"]]
    return frame
