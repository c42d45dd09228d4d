"""The owner's dashboard reads: show-rate and its siblings by period, studio or trainer
(the show_rate marts' counts), upcoming bookings and whether they are confirmed (the
bookings mart), at-risk clients by band over time (the risk_bands_daily mart), the drafts'
funnel and how trainers decide on them (the message_funnel mart) and clients' retention
by month (the client_retention mart). RLS scopes every read to the signed-in user: an
owner's studio; a trainer's own rows of the trainer-scoped marts."""

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
    """Clients per risk band per local day, each client by their latest score that day."""
    return query_frame(
        conn,
        """SELECT local_date AS day, risk_band, clients
           FROM marts.risk_bands_daily
           WHERE local_date BETWEEN %(start)s AND %(end)s
           ORDER BY 1, 2""",
        {"start": start, "end": end},
    )


# The funnel's weeks are those overlapping [start, end]; a draft counts in its week.
FUNNEL_WEEKS = """local_week > %(start)s::date - 7 AND local_week <= %(end)s
                  AND (%(trainer)s::text IS NULL OR trainer_id::text = %(trainer)s)"""
STAGES = ["drafted", "approved", "sent", "replied"]


def _rate(part: pd.Series, whole: pd.Series) -> pd.Series:
    """part / whole to 4 places; null where whole is 0 (nothing to divide), not 0."""
    return (part / whole.where(whole > 0)).astype(float).round(4)


def funnel(
    conn: psycopg.Connection, start: date, end: date, trainer_id: str | None = None
) -> pd.DataFrame:
    """Per local week (of one trainer when given): drafts made, decided, approved (as
    drafted or edited), rejected, sent and replied to within 7 days, with the acceptance
    rate (approved of decided) and the reply rate (replied of sent)."""
    frame = query_frame(
        conn,
        f"""SELECT local_week, sum(drafted)::int AS drafted, sum(decided)::int AS decided,
                   sum(approved)::int AS approved, sum(approved_edited)::int AS edited,
                   sum(rejected)::int AS rejected, sum(sent)::int AS sent,
                   sum(replied)::int AS replied
            FROM marts.message_funnel
            WHERE {FUNNEL_WEEKS}
            GROUP BY local_week ORDER BY local_week""",  # noqa: S608 - a fixed clause
        {"start": start, "end": end, "trainer": trainer_id},
    )
    frame["acceptance_rate"] = _rate(frame["approved"], frame["decided"])
    frame["reply_rate"] = _rate(frame["replied"], frame["sent"])
    return frame


def acceptance(
    conn: psycopg.Connection, *, start: date, end: date, trainer_id: str | None = None
) -> pd.DataFrame:
    """Per trainer and purpose, of the drafts made in the period's weeks and decided:
    approved as drafted, approved edited, rejected, and the acceptance rate (approved of
    decided)."""
    frame = query_frame(
        conn,
        f"""SELECT coalesce(trainer_name, 'unassigned') AS trainer, purpose,
                   sum(approved_unedited)::int AS approved,
                   sum(approved_edited)::int AS edited, sum(rejected)::int AS rejected
            FROM marts.message_funnel
            WHERE {FUNNEL_WEEKS}
            GROUP BY 1, 2 HAVING sum(decided) > 0 ORDER BY 1, 2""",  # noqa: S608 - fixed clause
        {"start": start, "end": end, "trainer": trainer_id},
    )
    decided = frame["approved"] + frame["edited"] + frame["rejected"]
    frame["acceptance_rate"] = _rate(frame["approved"] + frame["edited"], decided)
    return frame


def retention(conn: psycopg.Connection, start: date, end: date) -> pd.DataFrame:
    """Per local month overlapping [start, end]: clients active (attended a session), new,
    retained from the month before, reactivated, churned, and the retention rate."""
    return query_frame(
        conn,
        """SELECT local_month, active, new, retained, reactivated, churned, previous_active,
                  retention_rate::float AS retention_rate
           FROM marts.client_retention
           WHERE local_month_end >= %(start)s AND local_month <= %(end)s
           ORDER BY local_month""",
        {"start": start, "end": end},
    )
