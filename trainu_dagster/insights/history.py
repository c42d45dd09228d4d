"""Scores in the database: features in from the `client_activity` mart, one insight per
client per day out to `app.insights`.

The day is the studio's own (local midnight), so "today" means the same thing to the
trainer reading it; the first score of a day stands: scoring again the same day adds and
replaces nothing (the table's key), and a client first seen later that day is scored
then. History accumulates a row a day, which is what trends and the backtest read.
"""

from __future__ import annotations

import io
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import numpy as np
import pandas as pd
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import csv

from trainu_dagster.insights.scoring import FEATURES, active, score
from trainu_dagster.risk_config import FACTORS, RiskConfig

# The mart's rows travel out by COPY as CSV into Arrow (a tenth of fetching them as
# Python tuples); its columns, as the score reads them.
READ_FEATURES = """
COPY (
    SELECT client_id, location_id, days_since_last_attended,
           usual_gap_days::float AS usual_gap_days, attended_last_28d, attended_prior_28d,
           no_shows_last_28d, late_cancellations_last_28d,
           next_booking_at IS NOT NULL AS has_upcoming, has_stalled_goal
    FROM marts.client_activity
) TO STDOUT (FORMAT csv, HEADER)
"""
FEATURE_TYPES = {
    "client_id": pa.string(),
    "location_id": pa.string(),
    "days_since_last_attended": pa.float64(),
    "usual_gap_days": pa.float64(),
    "attended_last_28d": pa.int64(),
    "attended_prior_28d": pa.int64(),
    "no_shows_last_28d": pa.int64(),
    "late_cancellations_last_28d": pa.int64(),
    "has_upcoming": pa.bool_(),
    "has_stalled_goal": pa.bool_(),
}

# Today's scores travel in by COPY too, with their JSON already built on whole columns
# (building it per row in the INSERT was a third of the write), into a scratch table the
# insert reads.
SCORED = ("client_id", "location_id", "risk_score", "risk_band", "reason")  # + the JSON
SCRATCH = """
DROP TABLE IF EXISTS pg_temp.scored;
CREATE TEMP TABLE scored (
    client_id uuid, location_id text, risk_score numeric, risk_band text, reason text,
    reasons jsonb, features jsonb
) ON COMMIT DROP
"""
# What was written comes back summed per studio and band, with the clients whose band
# rose to high: today's high score where the previous one was not.
WRITE_SCORES = """
WITH written AS (
    INSERT INTO app.insights AS i (location_id, client_id, scored_at, risk_score, risk_band,
                                   reasons, features, reason, model_version)
    SELECT s.location_id, s.client_id, l.today, s.risk_score, s.risk_band, s.reasons,
           s.features, s.reason, %(version)s
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
    features = read_features(conn)
    run = ScoringRun()
    scored = score(features[active(features, config)], config)
    run.scored = len(scored)
    if scored.empty:
        return run
    table = pa.table(
        {
            **{column: scored[column] for column in SCORED},
            "reasons": reasons_json(scored, config),
            "features": features_json(scored),
        }
    )
    buffer = io.BytesIO()
    csv.write_csv(table, buffer, csv.WriteOptions(include_header=False))
    conn.execute(SCRATCH)
    columns = ", ".join(table.column_names)
    with conn.cursor().copy(f"COPY scored ({columns}) FROM STDIN (FORMAT csv)") as copy:
        copy.write(buffer.getvalue())
    params = {"as_of": as_of, "version": config.model_version}
    for location_id, band, count, insights, clients in conn.execute(WRITE_SCORES, params):
        run.written += count
        run.bands[band] += count
        run.by_location[location_id] += count
        run.raised_to_high += list(zip(insights or (), clients or (), strict=True))
    return run


def read_features(conn: psycopg.Connection) -> pd.DataFrame:
    """The mart's features of every client, typed as the score reads them."""
    buffer = io.BytesIO()
    with conn.cursor().copy(READ_FEATURES) as copy:
        for chunk in copy:
            buffer.write(chunk)
    buffer.seek(0)
    options = csv.ConvertOptions(column_types=FEATURE_TYPES, true_values=["t"], false_values=["f"])
    return csv.read_csv(buffer, convert_options=options).to_pandas()


def features_json(scored: pd.DataFrame) -> pa.Array:
    """Each client's features as the score saw them, one JSON object per row."""
    parts: list[str | pa.Array] = []
    for i, name in enumerate(FEATURES):
        parts += ["{" if i == 0 else ",", json.dumps(name) + ":", _json_value(scored[name])]
    return pc.binary_join_element_wise(*parts, "}", "")


def reasons_json(scored: pd.DataFrame, config: RiskConfig) -> pa.Array:
    """Each client's contributing factors (points > 0), as a JSON array of
    {factor, weight, value, points}."""
    cells = []
    for factor in FACTORS:
        head = f'{{"factor":{json.dumps(factor)},"weight":{json.dumps(config.weights[factor])}'
        cell = pc.binary_join_element_wise(
            head, ',"value":', _json_value(scored[f"value_{factor}"]),
            ',"points":', _json_value(scored[f"points_{factor}"]), "},", "",
        )  # fmt: skip
        contributed = pa.array(scored[f"points_{factor}"].to_numpy(dtype=float) > 0)
        cells.append(pc.if_else(contributed, cell, ""))
    # each cell ends in a comma; the last one's goes (a join skipping nulls would be
    # neater, but Arrow drops the rows where every cell is null)
    joined = pc.utf8_rtrim(pc.binary_join_element_wise(*cells, ""), characters=",")
    return pc.binary_join_element_wise("[", joined, "]", "")


def _json_value(column: pd.Series) -> pa.Array:
    """A column as JSON scalars: booleans, numbers, and null where unknown (NaN)."""
    if column.dtype == bool:
        return pc.cast(pa.array(column.to_numpy()), pa.string())
    numbers = column.to_numpy(dtype=float)
    text = pc.cast(pa.array(numbers, mask=~np.isfinite(numbers)), pa.string())
    return pc.fill_null(text, "null")
