"""Risk insights as Dagster assets: today's score per active client, and the backtest.

`client_risk` follows the `client_activity` mart (declarative automation), so a refresh
after ingestion scores the clients first seen today; its checks hold every active client
scored today, scores in range, bands consistent with the thresholds, and no opted-out
client given a re-engagement draft. `risk_backtest` measures the score against the rules
studios use today and shows the table in its metadata.
"""

from datetime import UTC, datetime

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    Config,
    MaterializeResult,
    MetadataValue,
    TableRecord,
    asset,
)

from trainu_dagster.insights import checks
from trainu_dagster.insights.backtest import backtest
from trainu_dagster.insights.features import load_history
from trainu_dagster.insights.history import score_clients
from trainu_dagster.observability.analytics import configured_analytics
from trainu_dagster.observability.product_events import emit_event
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import get_settings

CLIENT_RISK = AssetKey(["insights", "client_risk"])
CHECKS = {
    "every_active_client_scored_today": "Every active client in client_activity has today's score.",
    "scores_in_range": "Every stored score is between 0 and 1.",
    "bands_match_thresholds": "Today's bands agree with the configured thresholds.",
    "no_reengagement_for_opted_out": "No opted-out client holds a re-engagement draft.",
}


@asset(
    key=CLIENT_RISK,
    deps=[AssetKey(["marts", "client_activity"])],
    group_name="insights",
    kinds={"python", "postgres"},
    automation_condition=AutomationCondition.eager(),
    check_specs=[
        AssetCheckSpec(name, asset=CLIENT_RISK, description=text) for name, text in CHECKS.items()
    ],
    description="Per active client and day: risk score, band, factors and reason (app.insights).",
)
def client_risk(
    context: AssetExecutionContext,
    database: PostgresResource,
) -> MaterializeResult:  # type: ignore[type-arg]  # Dagster matches the bare class
    config = get_settings().risk_model
    now = datetime.now(UTC)
    with database.connect() as conn:
        run = score_clients(conn, config, as_of=now)
        for location, count in run.by_location.items():
            emit_event(
                conn,
                "insight_scored",
                actor="system:insights",
                analytics=configured_analytics(),
                location_id=location,
                properties={"clients": count, "model_version": config.model_version},
            )
        conn.commit()
        verdicts = checks.run_all(conn, config, as_of=now)
    context.log.info(
        f"{run.scored} active clients scored, {run.written} new today; bands {dict(run.bands)}; "
        f"{len(run.raised_to_high)} rose to high"
    )
    return MaterializeResult(
        metadata={
            "scored": run.scored,
            "new_today": run.written,
            "high": run.bands["high"],
            "medium": run.bands["medium"],
            "low": run.bands["low"],
            "raised_to_high": len(run.raised_to_high),
            "model_version": config.model_version,
        },
        check_results=[
            AssetCheckResult(check_name=name, passed=v.passed, metadata={"found": v.detail})
            for name, v in verdicts.items()
        ],
    )


class BacktestConfig(Config):
    days: int = 60  # past days scored, each with the 30 days after it known


@asset(
    key=["insights", "risk_backtest"],
    deps=[AssetKey(["marts", "bookings"]), CLIENT_RISK],
    group_name="insights",
    kinds={"python"},
    description="How well the score ranked the clients who then no-showed or stopped "
    "booking, against 'no visit in 10 days' and days since the last visit.",
)
def risk_backtest(
    context: AssetExecutionContext, config: BacktestConfig, database: PostgresResource
) -> MaterializeResult:  # type: ignore[type-arg]  # Dagster matches the bare class
    with database.connect() as conn:
        history = load_history(conn)
    result = backtest(
        history, get_settings().risk_model, days=config.days, until=pd.Timestamp.now(tz=UTC)
    )
    rows = result.table()
    context.log.info("\n" + pd.DataFrame(rows).to_string(index=False))
    return MaterializeResult(
        metadata={
            "days": result.days,
            "pairs": result.pairs,
            "positives": result.positives,
            "table": MetadataValue.table([TableRecord(row) for row in rows]),
        }
    )
