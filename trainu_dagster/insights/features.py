"""The risk features as of any past day, for the backtest.

The live score reads them from the `client_activity` mart (as of now); the backtest needs
them as they were on each past day, using only what was known then: sessions that had
happened, bookings already made and not yet cancelled, goal entries already recorded.
These are the mart's definitions restated over the whole history, a day at a time, on
whole columns; a test holds both to the same numbers at the same moment.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import psycopg

DAY = pd.Timedelta(days=1)
EPOCH = pd.Timestamp("1970-01-01", tz="UTC")
WINDOW = pd.Timedelta(days=28)
GAP_WINDOW = pd.Timedelta(days=120)
STALE_GOAL = pd.Timedelta(days=21)


@dataclass(frozen=True)
class History:
    """What the features are computed from, loaded once."""

    clients: pd.DataFrame  # client_id, location_id, contact_id, is_opted_out
    bookings: pd.DataFrame  # location_id, contact_id, start_at, outcome, booked_at, cancelled_at
    goals: pd.DataFrame  # goal_id, client_id, status, start_date, updated_at, baseline, target
    entries: pd.DataFrame  # goal_id, value, recorded_at


# Everything the features read, for one studio (`location`) or all (NULL).
HISTORY_SQL = {
    "clients": """
        SELECT id AS client_id, location_id, ghl_contact_id AS contact_id,
               opted_out_at IS NOT NULL AS is_opted_out
        FROM app.clients WHERE %(location)s::text IS NULL OR location_id = %(location)s""",
    "bookings": """
        SELECT location_id, contact_id, start_at, outcome, booked_at, cancelled_at
        FROM marts.bookings
        WHERE NOT is_deleted AND outcome <> 'invalid'
          AND (%(location)s::text IS NULL OR location_id = %(location)s)""",
    "goals": """
        SELECT id AS goal_id, client_id, status, start_date, updated_at,
               baseline_value::float AS baseline, target_value::float AS target
        FROM app.goals WHERE %(location)s::text IS NULL OR location_id = %(location)s""",
    "entries": """
        SELECT goal_id, value::float AS value, recorded_at
        FROM app.goal_entries WHERE %(location)s::text IS NULL OR location_id = %(location)s""",
}


def load_history(conn: psycopg.Connection, location_id: str | None = None) -> History:
    """From the marts and app tables (one studio, or all)."""

    def frame(name: str) -> pd.DataFrame:
        cur = conn.execute(HISTORY_SQL[name], {"location": location_id})
        return pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description or ()])

    return History(frame("clients"), frame("bookings"), frame("goals"), frame("entries"))


def features_as_of(history: History, as_of: pd.Timestamp) -> pd.DataFrame:
    """One row per client: `insights.scoring.FEATURES` as of `as_of`, plus the ids."""
    bookings = history.bookings
    key = ["location_id", "contact_id"]
    past = bookings[bookings["start_at"] <= as_of]
    showed = past[past["outcome"] == "showed"]
    recent = past[past["start_at"] > as_of - WINDOW]
    prior = past[(past["start_at"] <= as_of - WINDOW) & (past["start_at"] > as_of - 2 * WINDOW)]
    upcoming = bookings[
        (bookings["start_at"] > as_of)
        & (bookings["booked_at"] <= as_of)
        & ~(bookings["cancelled_at"] <= as_of)
    ]
    out = history.clients.set_index(key)
    last = showed.groupby(key)["start_at"].max()
    out["days_since_last_attended"] = np.floor((as_of - last) / DAY).reindex(out.index)
    out["usual_gap_days"] = _usual_gap(showed[showed["start_at"] > as_of - GAP_WINDOW], key)
    out["attended_last_28d"] = _count(recent, "showed", key, out.index)
    out["attended_prior_28d"] = _count(prior, "showed", key, out.index)
    out["no_shows_last_28d"] = _count(recent, "no_show", key, out.index)
    out["late_cancellations_last_28d"] = _count(recent, "late_cancelled", key, out.index)
    out["has_upcoming"] = out.index.isin(upcoming.set_index(key).index)
    out = out.reset_index()
    stalled = _stalled_clients(history, as_of)
    out["has_stalled_goal"] = out["client_id"].isin(stalled)
    return out


def _count(bookings: pd.DataFrame, outcome: str, key: list[str], index: pd.Index) -> pd.Series:
    counted = bookings[bookings["outcome"] == outcome].groupby(key).size()
    return counted.reindex(index, fill_value=0).astype(int)


def _usual_gap(showed: pd.DataFrame, key: list[str]) -> pd.Series:
    """Median days between consecutive attended sessions (the mart's percentile_cont)."""
    ordered = showed.sort_values([*key, "start_at"])
    gaps = ordered.groupby(key)["start_at"].diff() / DAY
    return gaps.groupby([ordered[k] for k in key]).median().round(2)


def _stalled_clients(history: History, as_of: pd.Timestamp) -> pd.Index:
    """Clients with an active goal that is flat or regressing over the last 28 days, or
    has had no entry for 21 days (the goal_progress and client_activity definitions).
    Active: started by then, and active now (TrainU keeps no history of goal statuses)."""
    goals = history.goals
    day = as_of.tz_convert("UTC").date() if as_of.tzinfo else as_of.date()
    active = goals[
        (pd.to_datetime(goals["start_date"]).dt.date <= day) & (goals["status"] == "active")
    ].set_index("goal_id")
    entries = history.entries[history.entries["recorded_at"] <= as_of]
    entries = entries[entries["goal_id"].isin(active.index)]
    latest = entries.groupby("goal_id")["recorded_at"].max().reindex(active.index)
    recent = entries[entries["recorded_at"] > as_of - WINDOW]
    pace = _weekly_pace(recent, active)
    stale = latest.isna() | (latest < as_of - STALE_GOAL)
    flat_or_worse = pace.notna() & (pace <= 0.01)
    return pd.Index(active.loc[stale | flat_or_worse, "client_id"].unique())


def _weekly_pace(recent: pd.DataFrame, goals: pd.DataFrame) -> pd.Series:
    """Least-squares slope of value over days, per week, as a share of the planned change
    (goal_progress's weekly_pace); NaN with fewer than two entries."""
    days = (recent["recorded_at"] - EPOCH) / DAY
    frame = recent.assign(x=days, y=recent["value"])
    grouped = frame.groupby("goal_id")
    n = grouped.size()
    mean_x, mean_y = grouped["x"].mean(), grouped["y"].mean()
    frame = frame.join(mean_x.rename("mx"), on="goal_id").join(mean_y.rename("my"), on="goal_id")
    covariance = (
        ((frame["x"] - frame["mx"]) * (frame["y"] - frame["my"])).groupby(frame["goal_id"]).sum()
    )
    variance = ((frame["x"] - frame["mx"]) ** 2).groupby(frame["goal_id"]).sum()
    slope = (covariance / variance.where(variance > 0)).where(n >= 2)
    planned = (goals["target"] - goals["baseline"]).reindex(slope.index)
    return (slope * 7 / planned).reindex(goals.index)
