"""The ingest and send jobs run in-process, as their sensors launch them, for tests."""

from __future__ import annotations

from dagster import DagsterInstance, ExecuteInProcessResult

from tests.ghl_simulator_harness import SIM_TOKEN
from trainu_dagster.db.server import Database
from trainu_dagster.jobs import ingest_webhook_events, send_messages
from trainu_dagster.resources.ghl import GhlResource
from trainu_dagster.resources.postgres import PostgresResource


def ingest_job(database: Database, **limits: float) -> ExecuteInProcessResult:
    """The ingest job; by default it applies what landed, drafts what that triggers, and
    goes idle soon after."""
    config = {"max_seconds": 20.0, "idle_seconds": 0.3, "report_seconds": 0.5} | limits
    return ingest_webhook_events.execute_in_process(
        run_config={"ops": {"apply_webhook_deliveries": {"config": config}}},
        resources={"database": PostgresResource(database_url=database.url())},
    )


def ingest(database: Database) -> None:
    """One ingest run, which must succeed."""
    assert ingest_job(database).success


def send_job(
    database: Database, sim_url: str, instance: DagsterInstance | None = None, **limits: float
) -> ExecuteInProcessResult:
    """The send job against the simulator; by default one pass (nothing keeps it up)."""
    return send_messages.execute_in_process(
        run_config={"ops": {"send_due_messages": {"config": {"idle_seconds": 0.0} | limits}}},
        resources={"database": PostgresResource(database_url=database.url()),
                   "ghl": GhlResource(base_url=sim_url, token=SIM_TOKEN)},
        instance=instance,
    )  # fmt: skip
