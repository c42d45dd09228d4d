"""The risk score on hand-built clients: the ranking a trainer would expect, reasons that
name exactly the factors that weighed, and configuration that refuses nonsense."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
from pydantic import ValidationError

from trainu_dagster.insights.history import features_json, reasons_json
from trainu_dagster.insights.scoring import FEATURES, active, score
from trainu_dagster.risk_config import FACTORS, RiskConfig

NAN = math.nan

# name -> features (days since last visit, usual gap, attended last/prior 4 weeks, no-shows,
# late cancels, something booked, a stalled goal)
CLIENTS = {
    "steady": (3, 7, 4, 4, 0, 0, True, False),
    "twice_weekly_slipping": (9, 3.5, 4, 8, 0, 0, True, False),
    "weekly_overdue": (12, 7, 2, 4, 0, 0, False, False),
    "fading": (20, 7, 1, 4, 1, 1, False, True),
    "gone_quiet": (45, 7, 0, 3, 2, 1, False, True),
    "new_and_booked": (NAN, NAN, 0, 0, 0, 0, True, False),
}
COLUMNS = (
    "days_since_last_attended",
    "usual_gap_days",
    "attended_last_28d",
    "attended_prior_28d",
    "no_shows_last_28d",
    "late_cancellations_last_28d",
    "has_upcoming",
    "has_stalled_goal",
)


@pytest.fixture
def scored() -> pd.DataFrame:
    frame = pd.DataFrame.from_dict(CLIENTS, orient="index", columns=COLUMNS)
    return score(frame.rename_axis("name").reset_index(), RiskConfig()).set_index("name")


def test_the_clients_rank_as_a_trainer_would(scored: pd.DataFrame) -> None:
    ranking = scored["risk_score"].sort_values(ascending=False).index.tolist()
    assert ranking[:3] == ["gone_quiet", "fading", "weekly_overdue"]
    assert set(ranking[-2:]) == {"steady", "new_and_booked"}
    assert scored.loc["gone_quiet", "risk_band"] == "high"
    assert scored.loc["steady", "risk_band"] == "low"
    assert scored["risk_score"].between(0, 1).all()


def test_the_usual_gap_is_the_clients_own(scored: pd.DataFrame) -> None:
    """Nine days away is nothing for a weekly client, a lot for one who comes twice a week."""
    weekly = score(
        pd.DataFrame([CLIENTS["twice_weekly_slipping"]], columns=COLUMNS).assign(usual_gap_days=7),
        RiskConfig(),
    )
    assert scored.loc["twice_weekly_slipping", "points_overdue"] > weekly["points_overdue"][0]


def test_the_reason_names_the_factors_that_weighed_largest_first(scored: pd.DataFrame) -> None:
    fading = scored.loc["fading"]
    assert fading["reason"] == (
        "no session in 20 days (usually weekly); nothing booked; "
        "1 session in the last 4 weeks, down from 4; a goal has stalled; "
        "1 no-show in the last 4 weeks; 1 late cancellation in the last 4 weeks"
    )
    points = fading[[f"points_{f}" for f in FACTORS]].astype(float)
    assert (points > 0).all()  # every factor weighed, so every one is named
    assert math.isclose(points.sum(), fading["risk_score"], abs_tol=1e-3)
    assert fading["value_overdue"] == round(20 / 7, 2)
    expected = (fading["value_overdue"] - 1) / 2 * 0.35  # 0 at one usual gap, 1 at three
    assert math.isclose(fading["points_overdue"], expected, abs_tol=1e-4)
    assert scored.loc["steady", "reason"] == "attending as usual"
    assert (scored.loc["steady", [f"points_{f}" for f in FACTORS]] == 0).all()
    assert scored.loc["new_and_booked", "reason"] == "attending as usual"


def test_weights_and_thresholds_are_configuration(scored: pd.DataFrame) -> None:
    frame = pd.DataFrame.from_dict(CLIENTS, orient="index", columns=COLUMNS)
    only_bookings = RiskConfig(weights={f: 1.0 if f == "no_upcoming" else 0.0 for f in FACTORS})
    rescored = score(frame, only_bookings)
    assert set(rescored["risk_score"]) == {0.0, 1.0}
    assert (rescored["risk_score"] == 1.0).tolist() == (~frame["has_upcoming"]).tolist()
    assert only_bookings.model_version != RiskConfig().model_version
    assert RiskConfig().model_version == RiskConfig().model_version


@pytest.mark.parametrize(
    "bad",
    [
        {"weights": {"overdue": 1.0}},
        {"weights": {f: 0.0 for f in FACTORS}},
        {"weights": {**{f: 0.1 for f in FACTORS}, "overdue": -1}},
        {"medium_from": 0.7, "high_from": 0.6},
    ],
)
def test_nonsense_configuration_is_refused_clearly(bad: dict) -> None:
    with pytest.raises(ValidationError):
        RiskConfig(**bad)


def test_active_clients_attended_recently_or_have_something_booked() -> None:
    frame = pd.DataFrame(
        {
            "days_since_last_attended": [10, 200, 200, NAN],
            "has_upcoming": [False, True, False, False],
        }
    )
    assert active(frame, RiskConfig()).tolist() == [True, True, False, False]


def test_the_stored_json_is_the_scored_frame(scored: pd.DataFrame) -> None:
    """What `app.insights` keeps: the features as the score saw them (unknown as null)
    and the factors that contributed, each with its weight, value and points."""
    config = RiskConfig()
    features = [json.loads(text) for text in features_json(scored).to_pylist()]
    reasons = [json.loads(text) for text in reasons_json(scored, config).to_pylist()]
    by_name = dict(zip(scored.index, zip(features, reasons, strict=True), strict=True))
    for name, (stored, factors) in by_name.items():
        row = scored.loc[name]
        assert list(stored) == list(FEATURES)
        for feature in FEATURES:
            expected = row[feature]
            assert stored[feature] == (None if pd.isna(expected) else expected), (name, feature)
        assert factors == [
            {"factor": f, "weight": config.weights[f], "value": row[f"value_{f}"],
             "points": row[f"points_{f}"]}
            for f in FACTORS if row[f"points_{f}"] > 0
        ]  # fmt: skip
    assert by_name["steady"][1] == []  # nothing contributed: an empty list, not a lost row
    assert by_name["new_and_booked"][0]["days_since_last_attended"] is None
    assert by_name["gone_quiet"][0]["has_stalled_goal"] is True
