"""Drafts the state of the data calls for, as a Dagster asset.

Event drafts (confirmations, check-ins, replies) are made by the ingest run that applies
the webhook, within seconds. What depends on state is made here, after each insights
refresh and every hour: reminders for tomorrow's sessions, re-engagement for clients
whose risk rose to high today, congratulations on goal milestones. Each draft's key names
its trigger, so materializing this again drafts nothing twice.
"""

from datetime import UTC, datetime

from dagster import (
    AssetCheckKey,
    AssetExecutionContext,
    AssetKey,
    AutomationCondition,
    MaterializeResult,
    asset,
)

from trainu_dagster.assets.insights import CLIENT_RISK
from trainu_dagster.messaging.drafting import open_drafter
from trainu_dagster.messaging.drafts import make_drafts, plan_state_drafts
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import get_settings

# typed for assets and checks alike, as `since_last_handled` requires of its condition
HOURLY_TICK: AutomationCondition[AssetKey | AssetCheckKey] = AutomationCondition.cron_tick_passed(
    "0 * * * *"
)
HOURLY = HOURLY_TICK.since_last_handled()


@asset(
    key=["messaging", "state_drafts"],
    deps=[CLIENT_RISK, AssetKey(["marts", "goal_progress"])],
    group_name="messaging",
    kinds={"python", "postgres"},
    automation_condition=AutomationCondition.eager() | HOURLY,
    description="Reminders, re-engagement and milestone drafts awaiting approval (app.messages).",
)
def state_drafts(
    context: AssetExecutionContext,
    database: PostgresResource,
) -> MaterializeResult:  # type: ignore[type-arg]  # Dagster matches the bare class
    now = datetime.now(UTC)
    with open_drafter(get_settings()) as drafter, database.connect() as conn:
        plans = plan_state_drafts(conn, now=now)
        outcome = make_drafts(conn, plans, drafter, now=now)
        conn.commit()
    by_purpose: dict[str, int] = {}
    for plan in plans:
        by_purpose[plan.purpose] = by_purpose.get(plan.purpose, 0) + 1
    context.log.info(
        f"{len(plans)} due ({by_purpose}): {len(outcome.created)} drafted, "
        f"{len(outcome.needs_manual)} need manual work, {outcome.skipped} already drafted or "
        "not to be written to"
    )
    return MaterializeResult(
        metadata={
            "due": len(plans),
            "drafted": len(outcome.created),
            "needs_manual": len(outcome.needs_manual),
            "skipped": outcome.skipped,
        }
    )
