"""The risk model's weights and thresholds: configuration, not code. It sits beside
`settings` (which reads it from the environment), below every layer, so that what reads
settings does not reach the insights package through it.

Defaults are the transparent rules studios already use; an owner or data engineer tunes
them with `TRAINU_RISK_MODEL` (JSON, e.g. `{"weights": {"no_upcoming": 0.2}}`). Every
score records `model_version`, which names the rules and a hash of these numbers, so a
change of weights starts a new series instead of silently rewriting the old one.
"""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, Field, model_validator

Factor = Literal["overdue", "attendance_drop", "no_shows", "late_cancels", "no_upcoming",
                 "stalled_goal"]  # fmt: skip
FACTORS: tuple[Factor, ...] = (
    "overdue",
    "attendance_drop",
    "no_shows",
    "late_cancels",
    "no_upcoming",
    "stalled_goal",
)


class RiskConfig(BaseModel, frozen=True):
    """How much each factor weighs (the score is their weighted mean, 0..1) and where the
    bands start."""

    weights: dict[Factor, float] = Field(
        default={
            "overdue": 0.35,
            "attendance_drop": 0.2,
            "no_shows": 0.12,
            "late_cancels": 0.08,
            "no_upcoming": 0.17,
            "stalled_goal": 0.08,
        }
    )
    medium_from: float = Field(default=0.35, gt=0, lt=1)
    high_from: float = Field(default=0.6, gt=0, lt=1)
    # overdue: 0 within the client's usual gap, 1 at this many usual gaps without a visit
    overdue_full_at: float = Field(default=3.0, gt=1)
    # no-shows and late cancellations in the last 4 weeks that count in full
    missed_full_at: int = Field(default=2, ge=1)
    default_gap_days: float = Field(default=7.0, gt=0)  # a client with too few sessions
    # active: attended within this many days, or something booked
    active_within_days: int = Field(default=90, ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> RiskConfig:
        if set(self.weights) != set(FACTORS):
            raise ValueError(f"weights must name exactly {', '.join(FACTORS)}")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError("weights must be non-negative and not all zero")
        if self.medium_from >= self.high_from:
            raise ValueError("medium_from must be below high_from")
        return self

    @property
    def model_version(self) -> str:
        digest = hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode())
        return f"rules-v1-{digest.hexdigest()[:8]}"
