"""The risk score: which active clients are drifting away, and a reason a trainer can act on.

Transparent rules, each a factor between 0 and 1, weighted (`RiskConfig`):
- overdue: days since the last attended session against the client's own usual gap
  (0 within one usual gap, 1 at `overdue_full_at` gaps);
- attendance_drop: sessions attended in the last 4 weeks against the 4 before;
- no_shows, late_cancels: in the last 4 weeks (`missed_full_at` of them count in full);
- no_upcoming: nothing booked;
- stalled_goal: an active goal that has stalled.
The score is the weighted mean; the reason lists the factors that contributed, largest
first ("no session in 12 days (usually weekly); 2 no-shows in the last 4 weeks; nothing
booked"). Everything is computed on whole columns (pandas/numpy), one client per row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainu_dagster.insights.config import FACTORS, RiskConfig

# The features the score reads, one row per client (the client_activity mart's columns).
FEATURES = (
    "days_since_last_attended",  # NaN: never attended
    "usual_gap_days",  # median days between attended sessions; NaN: too few
    "attended_last_28d",
    "attended_prior_28d",
    "no_shows_last_28d",
    "late_cancellations_last_28d",
    "has_upcoming",
    "has_stalled_goal",
)


def active(features: pd.DataFrame, config: RiskConfig) -> pd.Series:
    """Clients still training: attended within `active_within_days`, or something booked."""
    recent = features["days_since_last_attended"] <= config.active_within_days
    return recent.fillna(False) | features["has_upcoming"].astype(bool)


def score(features: pd.DataFrame, config: RiskConfig) -> pd.DataFrame:
    """`features` plus, per client: `value_<factor>`, `points_<factor>` (its share of the
    score), `risk_score` (0..1), `risk_band` (low/medium/high), `reason` and `factors`
    (the contributing factors as a JSON array, largest first)."""
    out = features.copy()
    values, raw = _factors(features, config)
    total = sum(config.weights.values())
    for factor in FACTORS:
        out[f"value_{factor}"] = values[factor]
        out[f"points_{factor}"] = (raw[factor] * config.weights[factor] / total).round(4)
    points = out[[f"points_{f}" for f in FACTORS]].to_numpy(dtype=float)
    out["risk_score"] = np.clip(points.sum(axis=1), 0, 1).round(4)
    out["risk_band"] = np.select(
        [out["risk_score"] >= config.high_from, out["risk_score"] >= config.medium_from],
        ["high", "medium"],
        "low",
    )
    texts = np.column_stack([_texts(features, values)[f] for f in FACTORS])
    weights = np.array([config.weights[f] for f in FACTORS])
    objects = np.column_stack(
        [_factor_json(f, weights[i], values[f], points[:, i], texts[:, i])
         for i, f in enumerate(FACTORS)]
    )  # fmt: skip
    order = np.argsort(-points, axis=1, kind="stable")  # largest contribution first
    ranked_points = np.take_along_axis(points, order, axis=1)
    ranked_texts = np.take_along_axis(texts, order, axis=1)
    ranked_objects = np.take_along_axis(objects, order, axis=1)
    reason = _joined(ranked_texts, ranked_points > 0, "; ")
    out["reason"] = np.where(reason == "", "attending as usual", reason)
    out["factors"] = "[" + _joined(ranked_objects, ranked_points > 0, ",") + "]"
    return out


def _factors(
    features: pd.DataFrame, config: RiskConfig
) -> tuple[dict[str, pd.Series], dict[str, pd.Series]]:
    """(value, raw 0..1 points) of each factor."""
    days = features["days_since_last_attended"].astype(float)
    gap = features["usual_gap_days"].astype(float).fillna(config.default_gap_days).clip(lower=1)
    ratio = (days / gap).round(2)
    last = features["attended_last_28d"].astype(float)
    prior = features["attended_prior_28d"].astype(float)
    drop = (prior - last).clip(lower=0)
    no_shows = features["no_shows_last_28d"].astype(float)
    late = features["late_cancellations_last_28d"].astype(float)
    nothing_booked = (~features["has_upcoming"].astype(bool)).astype(float)
    stalled = features["has_stalled_goal"].astype(bool).astype(float)
    values = {
        "overdue": ratio,
        "attendance_drop": drop,
        "no_shows": no_shows,
        "late_cancels": late,
        "no_upcoming": nothing_booked,
        "stalled_goal": stalled,
    }
    raw = {
        # never attended: nothing to be overdue from (an active one has a booking)
        "overdue": ((ratio - 1) / (config.overdue_full_at - 1)).clip(0, 1).fillna(0),
        "attendance_drop": (drop / prior.where(prior > 0)).clip(0, 1).fillna(0),
        "no_shows": (no_shows / config.missed_full_at).clip(0, 1),
        "late_cancels": (late / config.missed_full_at).clip(0, 1),
        "no_upcoming": nothing_booked,
        "stalled_goal": stalled,
    }
    return values, raw


def _texts(features: pd.DataFrame, values: dict[str, pd.Series]) -> dict[str, np.ndarray]:
    """Each factor's phrase for a trainer, per client."""
    days = features["days_since_last_attended"]
    gap = features["usual_gap_days"].astype(float)
    usual = np.select(
        [gap.isna(), gap <= 4.5, gap <= 10, gap <= 18],
        ["", " (usually twice a week or more)", " (usually weekly)", " (usually every 2 weeks)"],
        " (usually every " + gap.round().astype("Int64").astype(str) + " days)",
    )
    whole = {name: series.fillna(0).astype(int).astype(str) for name, series in values.items()}
    last = features["attended_last_28d"].astype(int)
    return {
        "overdue": np.where(
            days.isna(),
            "no session attended yet",
            "no session in " + days.fillna(0).astype(int).astype(str) + " days" + usual,
        ),
        "attendance_drop": (
            last.astype(str)
            + np.where(last == 1, " session", " sessions")
            + " in the last 4 weeks, down from "
            + features["attended_prior_28d"].astype(int).astype(str)
        ).to_numpy(),  # fmt: skip
        "no_shows": (
            whole["no_shows"]
            + np.where(values["no_shows"] == 1, " no-show", " no-shows")
            + " in the last 4 weeks"
        ).to_numpy(),  # fmt: skip
        "late_cancels": (
            whole["late_cancels"]
            + np.where(values["late_cancels"] == 1, " late cancellation", " late cancellations")
            + " in the last 4 weeks"
        ).to_numpy(),
        "no_upcoming": np.full(len(features), "nothing booked", dtype=object),
        "stalled_goal": np.full(len(features), "a goal has stalled", dtype=object),
    }


def _factor_json(
    factor: str, weight: float, values: pd.Series, points: np.ndarray, texts: np.ndarray
) -> np.ndarray:
    """`{"factor", "weight", "value", "points", "text"}` as JSON text, per client."""
    number = values.to_numpy(dtype=float)
    value = np.where(np.isnan(number), "null", np.round(number, 2).astype(str)).astype(object)
    shown = np.round(points, 4).astype(str).astype(object)
    head = f'{{"factor": "{factor}", "weight": {weight}, "value": '
    return head + value + ', "points": ' + shown + ', "text": "' + texts.astype(object) + '"}'


def _joined(ranked: np.ndarray, keep: np.ndarray, separator: str) -> np.ndarray:
    """Row-wise join of the kept cells, left to right, one column at a time."""
    joined = np.full(ranked.shape[0], "", dtype=object)
    for column in range(ranked.shape[1]):
        cell = ranked[:, column].astype(object)
        take = keep[:, column]
        joined = np.where(take & (joined != ""), joined + separator + cell, joined)
        joined = np.where(take & (joined == ""), cell, joined)
    return joined
