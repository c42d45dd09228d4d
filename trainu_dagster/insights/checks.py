"""What must hold of the scores after every refresh (the `client_risk` asset checks)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from trainu_dagster.risk_config import RiskConfig


@dataclass(frozen=True)
class Verdict:
    passed: bool
    detail: int  # how many rows break the rule


# Each query counts the rows that break its rule.
RULES = {
    # active as the score defines it (insights.scoring.active), without a score today
    "every_active_client_scored_today": """
        SELECT count(*) FROM marts.client_activity a JOIN app.locations l USING (location_id)
        WHERE (a.days_since_last_attended <= %(active_within)s OR a.next_booking_at IS NOT NULL)
          AND NOT EXISTS (
              SELECT FROM app.insights i
              WHERE i.client_id = a.client_id AND i.model_version = %(version)s
                AND i.scored_at = date_trunc('day', %(as_of)s::timestamptz AT TIME ZONE l.timezone)
                                  AT TIME ZONE l.timezone)""",
    "scores_in_range": """
        SELECT count(*) FROM app.insights WHERE risk_score NOT BETWEEN 0 AND 1""",
    "bands_match_thresholds": """
        SELECT count(*) FROM app.insights
        WHERE model_version = %(version)s AND scored_at > %(as_of)s::timestamptz - interval '1 day'
          AND risk_band <> CASE WHEN risk_score >= %(high)s THEN 'high'
                                WHEN risk_score >= %(medium)s THEN 'medium' ELSE 'low' END""",
    "no_reengagement_for_opted_out": """
        SELECT count(*) FROM app.messages m JOIN app.clients c ON c.id = m.client_id
        WHERE m.purpose = 're_engagement' AND c.opted_out_at IS NOT NULL
          AND m.status IN ('draft', 'pending_approval', 'needs_manual', 'approved', 'queued')""",
}


def run_all(conn: psycopg.Connection, config: RiskConfig, *, as_of: datetime) -> dict[str, Verdict]:
    params = {
        "as_of": as_of,
        "version": config.model_version,
        "active_within": config.active_within_days,
        "high": config.high_from,
        "medium": config.medium_from,
    }
    verdicts = {}
    for name, query in RULES.items():
        row = conn.execute(query, params).fetchone()
        assert row is not None  # each rule is a count(*)
        broken = int(row[0])
        verdicts[name] = Verdict(passed=broken == 0, detail=broken)
    return verdicts
