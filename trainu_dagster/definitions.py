"""The one Dagster code location: every asset, job, sensor and resource is wired here."""

from dagster import Definitions, in_process_executor
from dagster_dbt import DbtCliResource

from sensors import all_sensors
from trainu_dagster.assets.dbt import DBT_EXECUTABLE, dbt_project, trainu_dbt_models
from trainu_dagster.assets.drafts import state_drafts
from trainu_dagster.assets.insights import client_risk, risk_backtest
from trainu_dagster.assets.raw import ghl_raw_tables
from trainu_dagster.jobs import (
    backfill_ghl_history,
    build_models,
    build_models_nightly,
    ingest_webhook_events,
    pull_ghl,
    pull_ghl_schedule,
    reconcile_ghl_schedule,
    retry_dead_letters,
    send_messages,
)
from trainu_dagster.observability.logging import configure_logging
from trainu_dagster.resources.ghl import GhlResource
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import get_settings

configure_logging(get_settings().log_level)  # domain code logs redacted JSON in runs too

defs = Definitions(
    assets=[*ghl_raw_tables, trainu_dbt_models, client_risk, risk_backtest, state_drafts],
    jobs=[
        ingest_webhook_events,
        pull_ghl,
        backfill_ghl_history,
        retry_dead_letters,
        build_models,
        send_messages,
    ],  # fmt: skip
    schedules=[pull_ghl_schedule, reconcile_ghl_schedule, build_models_nightly],
    sensors=all_sensors,
    # A run is one process: every job here is one op (a landing loop, one dbt build), and a
    # step process would load the whole code location a second time for nothing.
    executor=in_process_executor,
    resources={
        "database": PostgresResource(),
        "ghl": GhlResource(),
        "dbt": DbtCliResource(project_dir=dbt_project, dbt_executable=DBT_EXECUTABLE),
    },
)
