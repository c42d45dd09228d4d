"""A client's own view: goals with their progress (the `goal_progress` mart's numbers),
the entries behind each chart and upcoming sessions (the thread is `reporting.threads`)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import pandas as pd
import psycopg

from trainu_dagster.reporting import query_frame


def goals(conn: psycopg.Connection, client_id: UUID | None = None) -> pd.DataFrame:
    """The goals RLS shows (a client's own; `client_id` narrows a trainer's to one client),
    active goals first, nearest target date first."""
    return query_frame(
        conn,
        """SELECT goal_id, client_id, title, unit, direction, status, start_date, target_date,
                  baseline_value::float, target_value::float, latest_value::float,
                  latest_recorded_at, percent_complete::float, is_on_track, trend
           FROM marts.goal_progress
           WHERE %(client)s::uuid IS NULL OR client_id = %(client)s
           ORDER BY status <> 'active', target_date, title""",
        {"client": client_id},
    )


def entries(conn: psycopg.Connection, goal_id: UUID) -> pd.DataFrame:
    return query_frame(
        conn,
        """SELECT recorded_at, value::float FROM app.goal_entries
           WHERE goal_id = %(goal)s ORDER BY recorded_at""",
        {"goal": goal_id},
    )


def upcoming_sessions(conn: psycopg.Connection, *, now: datetime, limit: int = 10) -> pd.DataFrame:
    return query_frame(
        conn,
        """SELECT start_local, status FROM marts.bookings
           WHERE outcome = 'open' AND NOT is_deleted AND start_at > %(now)s
           ORDER BY start_at LIMIT %(limit)s""",
        {"now": now, "limit": limit},
    )
