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
import pyarrow as pa
import pyarrow.compute as pc

from trainu_dagster.risk_config import FACTORS, RiskConfig

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
    score), `risk_score` (0..1), `risk_band` (low/medium/high) and `reason`."""
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
    texts = _texts(features, values)
    order = np.argsort(-points, axis=1, kind="stable")  # largest contribution first
    kept = np.take_along_axis(points, order, axis=1) > 0
    reason = _joined([texts[f] for f in FACTORS], order, kept, "; ")
    out["reason"] = pc.if_else(pc.equal(reason, ""), "attending as usual", reason).to_numpy(
        zero_copy_only=False
    )
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


def _texts(features: pd.DataFrame, values: dict[str, pd.Series]) -> dict[str, pa.Array]:
    """Each factor's phrase for a trainer, per client (Arrow string kernels)."""
    days = features["days_since_last_attended"].to_numpy(dtype=float)
    gap = features["usual_gap_days"].to_numpy(dtype=float)
    n = len(features)
    named = pa.array(
        np.select(
            [gap <= 4.5, gap <= 10, gap <= 18],  # NaN (no usual gap yet) compares False
            [" (usually twice a week or more)", " (usually weekly)", " (usually every 2 weeks)"],
            "",
        )
    )
    every = _joined_text(" (usually every ", _ints(np.round(gap)), " days)")
    usual = pc.if_else(pa.array(np.isnan(gap)), "", pc.if_else(pc.equal(named, ""), every, named))
    last = features["attended_last_28d"].to_numpy(dtype=int)
    return {
        "overdue": pc.if_else(
            pa.array(np.isnan(days)),
            "no session attended yet",
            _joined_text("no session in ", _ints(days), " days", usual),
        ),
        "attendance_drop": _joined_text(
            _ints(last),
            pa.array(np.where(last == 1, " session", " sessions")),
            " in the last 4 weeks, down from ",
            _ints(features["attended_prior_28d"].to_numpy(dtype=float)),
        ),
        "no_shows": _counted(values["no_shows"], "no-show", "no-shows"),
        "late_cancels": _counted(values["late_cancels"], "late cancellation", "late cancellations"),
        "no_upcoming": pa.array(np.full(n, "nothing booked")),
        "stalled_goal": pa.array(np.full(n, "a goal has stalled")),
    }


def _ints(numbers: np.ndarray) -> pa.Array:
    """Whole numbers as text (NaN as 0: the phrases that show one never see a NaN)."""
    return pa.array(np.nan_to_num(numbers).astype(np.int64)).cast(pa.string())


def _joined_text(*parts: str | pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(*parts, "")


def _counted(counts: pd.Series, one: str, many: str) -> pa.Array:
    number = counts.to_numpy(dtype=float)
    noun = pa.array(np.where(number == 1, f" {one}", f" {many}"))
    return _joined_text(_ints(number), noun, " in the last 4 weeks")


def _joined(
    columns: list[pa.Array], order: np.ndarray, kept: np.ndarray, separator: str
) -> pa.Array:
    """Per client, the cells of `columns` in that client's `order`, the kept ones joined."""
    n = order.shape[0]
    cells = pa.concat_arrays(columns)  # factor f of client r sits at f * n + r
    joined = pa.array(np.full(n, ""))
    for rank in range(order.shape[1]):
        cell = pc.take(cells, order[:, rank] * n + np.arange(n))
        grown = pc.if_else(
            pc.equal(joined, ""), cell, pc.binary_join_element_wise(joined, cell, separator)
        )
        joined = pc.if_else(pa.array(kept[:, rank]), grown, joined)
    return joined
