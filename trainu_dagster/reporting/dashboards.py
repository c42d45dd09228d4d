"""The owner's dashboard reads: show-rate and its siblings by period, studio or trainer
(the show_rate marts' counts), upcoming bookings and whether they are confirmed (the
bookings mart), at-risk clients by band over time (app.insights) and how trainers decide
on drafts (app.messages). RLS scopes every read to the signed-in owner's studio."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

import pandas as pd
import psycopg

from trainu_dagster.reporting import query_frame

Grain = Literal["week", "month"]
By = Literal["studio", "trainer"]
MARTS: dict[tuple[By, Grain], str] = {
    ("studio", "week"): "marts.show_rate_by_location_weekly",
    ("studio", "month"): "marts.show_rate_by_location_monthly",
    ("trainer", "week"): "marts.show_rate_by_trainer_weekly",
    ("trainer", "month"): "marts.show_rate_by_trainer_monthly",
}
COUNTS = ["booked", "showed", "no_shows", "cancelled", "late_cancelled", "unmarked", "upcoming"]


def show_rates(
    conn: psycopg.Connection,
    *,
    grain: Grain,
    by: By,
    start: date,
    end: date,
    trainer_id: str | None = None,
) -> pd.DataFrame:
    """One row per period (and trainer): the mart's counts and show-rate, the no-show,
    cancellation and late-cancellation rates (each of the sessions booked), and the
    show-rate's change from the previous period in points."""
    who = "trainer_id::text AS trainer_id, trainer_name" if by == "trainer" else "location_name"
    trainer = "trainer_id::text" if by == "trainer" else "NULL"
    frame = query_frame(
        conn,
        f"""SELECT period_start, period_end, {who}, {", ".join(COUNTS)},
                   show_rate::float AS show_rate
            FROM {MARTS[(by, grain)]}
            WHERE period_start BETWEEN %(start)s AND %(end)s
              AND (%(trainer)s::text IS NULL OR {trainer} = %(trainer)s)
            ORDER BY 3, period_start""",  # noqa: S608 - table and columns from fixed mappings
        {"start": start, "end": end, "trainer": trainer_id},
    )
    if by == "trainer":
        frame["trainer_name"] = frame["trainer_name"].fillna("unassigned")
    booked = frame["booked"].where(frame["booked"] > 0)
    for rate, count in (("no_show_rate", "no_shows"), ("cancellation_rate", "cancelled"),
                        ("late_cancel_rate", "late_cancelled")):  # fmt: skip
        frame[rate] = (frame[count] / booked).round(4)
    group = frame.columns[2]
    frame["show_rate_change"] = frame.groupby(group)["show_rate"].diff().round(4)
    return frame


def upcoming_bookings(conn: psycopg.Connection, *, now: datetime, until: datetime) -> pd.DataFrame:
    """Sessions ahead, with the trainer and whether the client confirmed."""
    return query_frame(
        conn,
        """SELECT b.start_local, t.trainer_name, c.name AS client,
                  b.status = 'confirmed' AS confirmed
           FROM marts.bookings b
           LEFT JOIN app.clients c ON c.location_id = b.location_id
                                  AND c.ghl_contact_id = b.contact_id
           LEFT JOIN (SELECT location_id, ghl_user_id, name AS trainer_name FROM app.trainers) t
                  ON t.location_id = b.location_id AND t.ghl_user_id = b.trainer_user_id
           WHERE b.outcome = 'open' AND NOT b.is_deleted
             AND b.start_at >= %(now)s AND b.start_at < %(until)s
           ORDER BY b.start_at""",
        {"now": now, "until": until},
    )


def risk_bands(conn: psycopg.Connection, *, start: date, end: date) -> pd.DataFrame:
    """Clients per risk band per day scored (the latest model each day)."""
    return query_frame(
        conn,
        """SELECT (scored_at AT TIME ZONE l.timezone)::date AS day, risk_band,
                  count(DISTINCT client_id)::int AS clients
           FROM app.insights i JOIN app.locations l USING (location_id)
           WHERE (scored_at AT TIME ZONE l.timezone)::date BETWEEN %(start)s AND %(end)s
           GROUP BY 1, 2 ORDER BY 1, 2""",
        {"start": start, "end": end},
    )


def acceptance(conn: psycopg.Connection, *, start: date, end: date) -> pd.DataFrame:
    """Per trainer and purpose: drafts decided, approved as drafted, approved edited,
    rejected, and the acceptance rate (approved of decided)."""
    frame = query_frame(
        conn,
        """SELECT coalesce(t.name, 'unassigned') AS trainer, m.purpose,
                  count(*) FILTER (WHERE m.decision = 'approved_unedited')::int AS approved,
                  count(*) FILTER (WHERE m.decision = 'approved_edited')::int AS edited,
                  count(*) FILTER (WHERE m.decision = 'rejected')::int AS rejected
           FROM app.messages m
           JOIN app.locations l USING (location_id)
           LEFT JOIN app.trainers t ON t.id = m.trainer_id
           WHERE m.decision IS NOT NULL
             AND (m.decided_at AT TIME ZONE l.timezone)::date BETWEEN %(start)s AND %(end)s
           GROUP BY 1, 2 ORDER BY 1, 2""",
        {"start": start, "end": end},
    )
    decided = frame["approved"] + frame["edited"] + frame["rejected"]
    frame["acceptance_rate"] = ((frame["approved"] + frame["edited"]) / decided).round(4)
    return frame
