"""Scores in the database: features in from the `client_activity` mart, one insight per
client per day out to `app.insights`.

The day is the studio's own (local midnight), so "today" means the same thing to the
trainer reading it; the first score of a day stands: scoring again the same day adds and
replaces nothing (the table's key), and a client first seen later that day is scored
then. History accumulates a row a day, which is what trends and the backtest read.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import pandas as pd
import psycopg

from trainu_dagster.insights.config import RiskConfig
from trainu_dagster.insights.scoring import FEATURES, active, score

READ_FEATURES = """
SELECT client_id, location_id, contact_id, is_opted_out, days_since_last_attended,
       usual_gap_days::float AS usual_gap_days, attended_last_28d, attended_prior_28d,
       no_shows_last_28d, late_cancellations_last_28d,
       next_booking_at IS NOT NULL AS has_upcoming, has_stalled_goal
FROM marts.client_activity
"""

# Features are stored as the score saw them, one JSON object per insight.
WRITE_SCORES = f"""
INSERT INTO app.insights AS i (location_id, client_id, scored_at, risk_score, risk_band,
                               reasons, features, reason, model_version)
SELECT s.location_id, s.client_id,
       date_trunc('day', %(as_of)s::timestamptz AT TIME ZONE l.timezone)
           AT TIME ZONE l.timezone,
       s.risk_score, s.risk_band, s.factors::jsonb,
       jsonb_build_object({", ".join(f"'{name}', s.{name}" for name in FEATURES)}),
       s.reason, %(version)s
FROM unnest(%(client_id)s::uuid[], %(location_id)s::text[], %(risk_score)s::numeric[],
            %(risk_band)s::text[], %(factors)s::text[], %(reason)s::text[],
            {
    ", ".join(
        f"%({name})s::{kind}[]"
        for name, kind in (
            ("days_since_last_attended", "float"),
            ("usual_gap_days", "float"),
            ("attended_last_28d", "int"),
            ("attended_prior_28d", "int"),
            ("no_shows_last_28d", "int"),
            ("late_cancellations_last_28d", "int"),
            ("has_upcoming", "bool"),
            ("has_stalled_goal", "bool"),
        )
    )
})
     AS s (client_id, location_id, risk_score, risk_band, factors, reason, {", ".join(FEATURES)})
JOIN app.locations l USING (location_id)
ON CONFLICT (client_id, scored_at, model_version) DO NOTHING
RETURNING i.id, i.client_id, i.location_id, i.risk_band, i.scored_at
"""  # noqa: S608 - composed from constant column names only

# Of today's new high scores, those whose previous score was not high: the band rose.
RAISED_TO_HIGH = """
SELECT i.id, i.client_id
FROM app.insights i
WHERE i.id = ANY(%s::uuid[]) AND i.risk_band = 'high'
  AND coalesce((SELECT p.risk_band FROM app.insights p
                WHERE p.client_id = i.client_id AND p.scored_at < i.scored_at
                ORDER BY p.scored_at DESC LIMIT 1), 'none') <> 'high'
"""


@dataclass
class ScoringRun:
    scored: int = 0  # active clients scored
    written: int = 0  # new insights (the rest were already scored today)
    bands: Counter[str] = field(default_factory=Counter)
    by_location: Counter[str] = field(default_factory=Counter)
    raised_to_high: list[tuple[UUID, UUID]] = field(default_factory=list)  # (insight, client)


def score_clients(conn: psycopg.Connection, config: RiskConfig, *, as_of: datetime) -> ScoringRun:
    """Score every active client from the mart and keep today's scores; the caller commits."""
    cur = conn.execute(READ_FEATURES)
    features = pd.DataFrame(cur.fetchall(), columns=[c.name for c in cur.description or ()])
    run = ScoringRun()
    if features.empty:
        return run
    features = features.astype({"days_since_last_attended": float, "usual_gap_days": float})
    scored = score(features[active(features, config)], config)
    run.scored = len(scored)
    if scored.empty:
        return run
    params = {
        "as_of": as_of,
        "version": config.model_version,
        **{c: _column(scored[c]) for c in ("client_id", "location_id", "risk_score",
                                            "risk_band", "factors", "reason", *FEATURES)},
    }  # fmt: skip
    written = conn.execute(WRITE_SCORES, params).fetchall()
    run.written = len(written)
    run.bands.update(band for _, _, _, band, _ in written)
    run.by_location.update(location for _, _, location, _, _ in written)
    raised = conn.execute(RAISED_TO_HIGH, ([row[0] for row in written],)).fetchall()
    run.raised_to_high = [(insight, client) for insight, client in raised]
    return run


def _column(series: pd.Series) -> list:
    """Values as Postgres parameters (Python scalars); NaN becomes NULL."""
    return series.astype(object).where(series.notna(), None).tolist()
