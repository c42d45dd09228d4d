"""How well the risk score would have ranked the clients who then slipped away.

For each past day, every client active that day is scored with only what was known that
day (`features.features_as_of`); the label is whether, in the 30 days that followed, the
client no-showed or stopped booking (no session at all). Ranking quality is measured on
all (client, day) pairs together: AUC, and precision and recall among the top 10% — the
clients a trainer would actually call — against the two rules studios use today, "no
visit in 10 days" and plain days since the last visit. Ties (the first baseline is all
ties) count as their expected share, as a random order among equals would give.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainu_dagster.insights.features import History, features_as_of
from trainu_dagster.insights.scoring import active, score
from trainu_dagster.risk_config import RiskConfig

HORIZON = pd.Timedelta(days=30)
TOP_SHARE = 0.10


@dataclass(frozen=True)
class Ranking:
    name: str
    auc: float
    precision_at_top: float
    recall_at_top: float


@dataclass(frozen=True)
class Backtest:
    days: int
    pairs: int  # (client, day) pairs scored
    positives: int  # of which the client then no-showed or stopped booking
    rankings: tuple[Ranking, ...]  # the model first, then the baselines

    def table(self) -> list[dict[str, str | float]]:
        return [
            {
                "ranking": r.name,
                "auc": r.auc,
                "precision_top_10%": r.precision_at_top,
                "recall_top_10%": r.recall_at_top,
            }  # fmt: skip
            for r in self.rankings
        ]


def backtest(history: History, config: RiskConfig, *, days: int, until: pd.Timestamp) -> Backtest:
    """Score each of the `days` days ending 30 days before `until` (so every day's next 30
    days are known) and measure the rankings."""
    last_day = (until - HORIZON).normalize()
    frames = []
    for offset in range(days):
        as_of = last_day - offset * pd.Timedelta(days=1)
        features = features_as_of(history, as_of)
        features = features[active(features, config)]
        if features.empty:
            continue
        scored = score(features, config)
        frames.append(
            pd.DataFrame(
                {
                    "model": scored["risk_score"].to_numpy(),
                    "no visit in 10 days": (
                        scored["days_since_last_attended"].fillna(10_000) >= 10
                    ).to_numpy(dtype=float),
                    # never attended: as far from a visit as one can be
                    "days since last visit": scored["days_since_last_attended"]
                    .fillna(10_000)
                    .to_numpy(),
                    "label": _slipped(history, scored, as_of).to_numpy(),
                }
            )
        )
    pairs = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    if pairs.empty or pairs["label"].nunique() < 2:
        raise ValueError("not enough history to backtest: no day with both outcomes")
    labels = pairs["label"].to_numpy(dtype=bool)
    rankings = tuple(
        Ranking(name, *_measure(pairs[name].to_numpy(dtype=float), labels))
        for name in ("model", "no visit in 10 days", "days since last visit")
    )
    return Backtest(len(frames), len(pairs), int(labels.sum()), rankings)


def _slipped(history: History, clients: pd.DataFrame, as_of: pd.Timestamp) -> pd.Series:
    """No-showed, or had no session at all, in the 30 days after `as_of`."""
    key = ["location_id", "contact_id"]
    after = history.bookings[
        (history.bookings["start_at"] > as_of) & (history.bookings["start_at"] <= as_of + HORIZON)
    ]
    sessions = after[after["outcome"].isin(["showed", "no_show", "open"])].set_index(key).index
    no_shows = after[after["outcome"] == "no_show"].set_index(key).index
    index = clients.set_index(key).index
    return pd.Series(~index.isin(sessions) | index.isin(no_shows), index=clients.index)


def _measure(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float, float]:
    precision, recall = _at_top(scores, labels, TOP_SHARE)
    return round(_auc(scores, labels), 4), round(precision, 4), round(recall, 4)


def _auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney: the chance a random positive outranks a random negative (ties half)."""
    ranks = pd.Series(scores).rank(method="average").to_numpy()
    positives = labels.sum()
    negatives = len(labels) - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def _at_top(scores: np.ndarray, labels: np.ndarray, share: float) -> tuple[float, float]:
    """Expected precision and recall among the top `share`, ties broken at random."""
    take = max(1, round(share * len(scores)))
    cut = np.sort(scores)[::-1][take - 1]
    above, tied = scores > cut, scores == cut
    expected_hits = labels[above].sum() + labels[tied].mean() * (take - above.sum())
    return float(expected_hits / take), float(expected_hits / labels.sum())
