"""One client at a glance, beside a draft in the inbox: how their risk score moved, their
bookings and what became of them (the bookings mart), and their goals (`client_goals`)."""

from __future__ import annotations

from uuid import UUID

import pandas as pd
import psycopg

from trainu_dagster.reporting import query_frame


def risk_history(conn: psycopg.Connection, client_id: UUID, *, limit: int = 90) -> pd.DataFrame:
    """The client's risk scores, oldest first: one per scoring (the latest `limit`)."""
    return query_frame(
        conn,
        """SELECT scored_at, risk_score::float AS risk_score, risk_band, reason
           FROM (SELECT * FROM app.insights WHERE client_id = %(client)s
                 ORDER BY scored_at DESC LIMIT %(limit)s) latest
           ORDER BY scored_at""",
        {"client": client_id, "limit": limit},
    )


def bookings(conn: psycopg.Connection, client_id: UUID, *, limit: int = 12) -> pd.DataFrame:
    """The client's latest bookings, upcoming ones included, newest first, in the studio's
    time, with what became of each (showed, no-show, cancelled...)."""
    return query_frame(
        conn,
        """SELECT b.start_local, b.outcome, b.status
           FROM app.clients c
           JOIN marts.bookings b ON b.location_id = c.location_id
                                AND b.contact_id = c.ghl_contact_id
           WHERE c.id = %(client)s AND NOT b.is_deleted
           ORDER BY b.start_at DESC LIMIT %(limit)s""",
        {"client": client_id, "limit": limit},
    )
