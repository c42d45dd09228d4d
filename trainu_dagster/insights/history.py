"""Scores in the database: features in from the `client_activity` mart, one insight per
client per day out to `app.insights`.

The day is the studio's own (local midnight), so "today" means the same thing to the
trainer reading it; the first score of a day stands: scoring again the same day adds and
replaces nothing (the table's key), and a client first seen later that day is scored
then. History accumulates a row a day, which is what trends and the backtest read.
"""

from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import pandas as pd
import psycopg
import pyarrow as pa
from pyarrow import csv

from trainu_dagster.insights.config import FACTORS, RiskConfig
from trainu_dagster.insights.scoring import FEATURES, active, score

READ_FEATURES = """
SELECT client_id, location_id, contact_id, is_opted_out, days_since_last_attended,
       usual_gap_days::float AS usual_gap_days, attended_last_28d, attended_prior_28d,
       no_shows_last_28d, late_cancellations_last_28d,
       next_booking_at IS NOT NULL AS has_upcoming, has_stalled_goal
FROM marts.client_activity
"""

# Today's scores travel by COPY (a whole column of reasons as one text array is slow to
# send), into a scratch table the insert reads.
FACTOR_COLUMNS = tuple(f"{kind}_{f}" for f in FACTORS for kind in ("value", "points"))
SCORED = ("client_id", "location_id", "risk_score", "risk_band", "reason", *FEATURES,
          *FACTOR_COLUMNS)  # fmt: skip
SCRATCH = f"""
DROP TABLE IF EXISTS pg_temp.scored;
CREATE TEMP TABLE scored (
    client_id uuid, location_id text, risk_score numeric, risk_band text, reason text,
    days_since_last_attended float, usual_gap_days float, attended_last_28d int,
    attended_prior_28d int, no_shows_last_28d int, late_cancellations_last_28d int,
    has_upcoming bool, has_stalled_goal bool,
    {", ".join(f"{column} float" for column in FACTOR_COLUMNS)}
) ON COMMIT DROP
"""
# The factors that contributed, with weight, value and points (their share of the score).
FACTORS_JSON = "to_jsonb(array_remove(ARRAY[{}], NULL))".format(
    ", ".join(
        f"CASE WHEN s.points_{f} > 0 THEN jsonb_build_object('factor', '{f}', "
        f"'weight', %(w_{f})s::float, 'value', s.value_{f}, 'points', s.points_{f}) END"
        for f in FACTORS
    )
)
# Features are stored as the score saw them, one JSON object per insight. What was written
# comes back summed per studio and band, with the clients whose band rose to high: today's
# high score where the previous one was not.
WRITE_SCORES = f"""
WITH written AS (
    INSERT INTO app.insights AS i (location_id, client_id, scored_at, risk_score, risk_band,
                                   reasons, features, reason, model_version)
    SELECT s.location_id, s.client_id, l.today,
           s.risk_score, s.risk_band, {FACTORS_JSON},
           jsonb_build_object({", ".join(f"'{name}', s.{name}" for name in FEATURES)}),
           s.reason, %(version)s
    FROM scored s
    JOIN (SELECT location_id,  -- the studio's local midnight, once per studio
                 date_trunc('day', %(as_of)s::timestamptz AT TIME ZONE timezone)
                     AT TIME ZONE timezone AS today
          FROM app.locations) l USING (location_id)
    ON CONFLICT (client_id, scored_at, model_version) DO NOTHING
    RETURNING i.id, i.client_id, i.location_id, i.risk_band, i.scored_at
),
rose AS (
    SELECT written.*, risk_band = 'high' AND coalesce((
        SELECT p.risk_band FROM app.insights p
        WHERE p.client_id = written.client_id AND p.scored_at < written.scored_at
        ORDER BY p.scored_at DESC LIMIT 1), 'none') <> 'high' AS rose
    FROM written
)
SELECT location_id, risk_band, count(*),
       array_agg(id) FILTER (WHERE rose), array_agg(client_id) FILTER (WHERE rose)
FROM rose GROUP BY location_id, risk_band
"""  # noqa: S608 - composed from constant column names only


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
    conn.execute(SCRATCH)
    table = pa.Table.from_pandas(
        scored[list(SCORED)].astype({"client_id": str}), preserve_index=False
    )
    buffer = io.BytesIO()
    csv.write_csv(table, buffer, csv.WriteOptions(include_header=False))
    with conn.cursor().copy(f"COPY scored ({', '.join(SCORED)}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())
    params = {"as_of": as_of, "version": config.model_version,
              **{f"w_{f}": w for f, w in config.weights.items()}}  # fmt: skip
    for location_id, band, count, insights, clients in conn.execute(WRITE_SCORES, params):
        run.written += count
        run.bands[band] += count
        run.by_location[location_id] += count
        run.raised_to_high += list(zip(insights or (), clients or (), strict=True))
    return run
