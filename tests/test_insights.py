"""Risk insights against a real studio: pulled from the simulator, marts built by the
real dbt, scored into `app.insights` by the real Dagster asset, and backtested."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, materialize

from ghl_simulator import Studio, generate_studio, write_app_data
from tests.conftest import drop_database, new_database
from tests.dbt_harness import dbt_ok
from tests.ghl_simulator_harness import SIM_TOKEN, running_simulator
from trainu_dagster.assets.insights import client_risk, risk_backtest
from trainu_dagster.db.server import Database
from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ingest.pull import STREAMS, PullOptions, pull_stream
from trainu_dagster.insights.backtest import backtest
from trainu_dagster.insights.features import features_as_of, load_history
from trainu_dagster.insights.history import read_features, score_clients
from trainu_dagster.insights.scoring import FEATURES
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.risk_config import RiskConfig

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
LOCATION = "loc-insights"


@pytest.fixture(scope="module")
def studio() -> Studio:
    return generate_studio(LOCATION, trainers=3, clients=160, days=150, seed=21, now=NOW)


@pytest.fixture(scope="module")
def built(
    template_database: Database, studio: Studio, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """The studio's whole history pulled, its app data written, marts built as of NOW."""
    database = new_database(template_database, "insights")
    options = PullOptions(since=NOW - timedelta(days=200))
    with (
        running_simulator(studio, rate_limit=None) as url,
        GhlClient(SIM_TOKEN, base_url=url) as client,
        database.connect(autocommit=True) as conn,
    ):
        for stream in STREAMS:
            pull_stream(conn, client, LOCATION, stream, options=options, now=NOW)
    with database.connect() as conn, conn.transaction():
        write_app_data(conn, studio)
    dbt_ok(database, tmp_path_factory.mktemp("dbt"), "build", "--exclude-resource-type",
           "unit_test", variables={"as_of": NOW.isoformat()})  # fmt: skip
    yield database
    drop_database(database)


def mart_features(database: Database) -> pd.DataFrame:
    with database.connect() as conn:
        return read_features(conn)


def test_the_backtests_features_are_the_marts_at_the_same_moment(built: Database) -> None:
    """The backtest restates the mart's definitions over history: at one moment, both
    give every client the same numbers."""
    with built.connect() as conn:
        restated = features_as_of(load_history(conn), pd.Timestamp(NOW))
    mart = mart_features(built).set_index("client_id").sort_index()
    restated = restated.set_index("client_id").sort_index()
    assert len(mart) == len(restated) > 100
    for column in FEATURES:
        left = mart[column].astype(float).to_numpy()
        right = restated[column].astype(float).to_numpy()
        assert np.allclose(left, right, equal_nan=True, atol=0.011), column
    assert mart["has_stalled_goal"].any() and mart["has_upcoming"].any()


def test_the_day_is_the_studios_local_day(built: Database) -> None:
    """A score's day starts at the studio's local midnight: 02:00 UTC is still yesterday
    in New York, and the same instant is today in Tokyo."""
    late = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)  # 21:00 on the 20th in New York
    with built.connect() as conn:
        timezone = conn.execute(
            "SELECT timezone FROM app.locations WHERE location_id = %s", (LOCATION,)
        ).fetchone()[0]
        score_clients(conn, RiskConfig(), as_of=late)
        new_york = conn.execute("SELECT DISTINCT scored_at FROM app.insights").fetchall()
        conn.execute("DELETE FROM app.insights")
        conn.execute("UPDATE app.locations SET timezone = 'Asia/Tokyo'")
        score_clients(conn, RiskConfig(), as_of=late)
        tokyo = conn.execute("SELECT DISTINCT scored_at FROM app.insights").fetchall()
        conn.rollback()
    assert timezone == "America/New_York"
    assert new_york == [(datetime(2026, 11, 20, 5, 0, tzinfo=UTC),)]  # midnight EST
    assert tokyo == [(datetime(2026, 11, 20, 15, 0, tzinfo=UTC),)]  # midnight on the 21st, JST


def test_one_score_per_active_client_per_day_and_rerunning_adds_nothing(built: Database) -> None:
    config = RiskConfig()
    with built.connect() as conn:
        first = score_clients(conn, config, as_of=NOW)
        again = score_clients(conn, config, as_of=NOW + timedelta(hours=2))  # the same day
        tomorrow = score_clients(conn, config, as_of=NOW + timedelta(days=1))
        rows = conn.execute(
            """SELECT client_id, count(*), count(DISTINCT scored_at), min(reason)
               FROM app.insights GROUP BY client_id"""
        ).fetchall()
        stored = conn.execute(
            "SELECT risk_score, risk_band, features, reasons FROM app.insights LIMIT 1"
        ).fetchone()
        conn.rollback()
    assert first.scored == first.written > 80
    assert (again.scored, again.written) == (first.scored, 0)
    assert tomorrow.written == first.scored
    assert {(count, days) for _, count, days, _ in rows} == {(2, 2)}
    assert all(reason for *_, reason in rows)
    # every high score on the first day is new, so it rose; the next day it stays high
    assert len(first.raised_to_high) == first.bands["high"] > 0
    assert tomorrow.raised_to_high == []
    score, band, features, reasons = stored
    assert 0 <= float(score) <= 1 and band in ("low", "medium", "high")
    assert set(features) == set(FEATURES)
    assert all({"factor", "weight", "value", "points"} == set(r) for r in reasons)
    assert all(r["points"] > 0 for r in reasons)  # only what contributed


def test_the_asset_scores_today_and_its_checks_pass_twice(built: Database) -> None:
    resources = {"database": PostgresResource(database_url=built.url())}
    with DagsterInstance.ephemeral() as instance:
        runs = [
            materialize([client_risk], resources=resources, instance=instance) for _ in range(2)
        ]
    for result in runs:
        assert result.success
        checks = result.get_asset_check_evaluations()
        assert {c.check_name for c in checks} == {
            "every_active_client_scored_today",
            "scores_in_range",
            "bands_match_thresholds",
            "no_reengagement_for_opted_out",
        }
        assert all(c.passed for c in checks)
    metadata = [
        r.asset_materializations_for_node("insights__client_risk")[0].metadata for r in runs
    ]
    assert metadata[0]["new_today"].value == metadata[0]["scored"].value > 0
    assert metadata[1]["new_today"].value == 0
    with built.connect() as conn:
        events = conn.execute(
            "SELECT count(*) FROM app.events WHERE event_type = 'insight_scored'"
        ).fetchone()[0]
    assert events == 1  # only the run that scored someone


def test_the_backtest_ranks_and_reports_against_the_baselines(built: Database) -> None:
    with built.connect() as conn:
        history = load_history(conn)
    result = backtest(history, RiskConfig(), days=30, until=pd.Timestamp(NOW))
    assert result.days == 30 and result.pairs > 30 * 80
    assert 0 < result.positives < result.pairs
    names = [r.name for r in result.rankings]
    assert names == ["model", "no visit in 10 days", "days since last visit"]
    for ranking in result.rankings:
        assert 0 <= ranking.auc <= 1
        assert 0 <= ranking.precision_at_top <= 1 and 0 <= ranking.recall_at_top <= 1


def test_the_backtest_asset_shows_its_table(built: Database) -> None:
    resources = {"database": PostgresResource(database_url=built.url())}
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [risk_backtest, client_risk],
            selection=[AssetKey(["insights", "risk_backtest"])],
            resources=resources,
            instance=instance,
            run_config={"ops": {"insights__risk_backtest": {"config": {"days": 10}}}},
        )
    assert result.success
    [materialization] = result.asset_materializations_for_node("insights__risk_backtest")
    table = materialization.metadata["table"].value
    assert [record.data["ranking"] for record in table.records] == [
        "model", "no visit in 10 days", "days since last visit",
    ]  # fmt: skip


def test_insights_are_in_the_definitions() -> None:
    from trainu_dagster.definitions import defs

    graph = defs.resolve_asset_graph()
    risk = graph.get(AssetKey(["insights", "client_risk"]))
    assert AssetKey(["marts", "client_activity"]) in risk.parent_keys
    assert risk.automation_condition is not None
