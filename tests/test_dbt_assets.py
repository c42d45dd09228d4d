"""The dbt project through Dagster: models are assets downstream of the raw GHL tables,
dbt tests are asset checks, and the marts refresh themselves after ingestion."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    DefaultScheduleStatus,
    evaluate_automation_conditions,
    materialize,
)
from dagster_dbt import DbtCliResource

from ghl_simulator import generate_studio, write_app_data
from tests.conftest import drop_database, new_database
from tests.ghl_simulator_harness import creation_changes, webhooks_for
from tests.ingest_helpers import land_and_process
from trainu_dagster.assets.dbt import dbt_build_args, dbt_project, trainu_dbt_models
from trainu_dagster.assets.drafts import state_drafts
from trainu_dagster.assets.insights import CLIENT_RISK, client_risk
from trainu_dagster.db.server import Database
from trainu_dagster.definitions import defs
from trainu_dagster.resources.postgres import PostgresResource

NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)


def test_routine_builds_skip_unit_tests_and_refresh_only_when_asked() -> None:
    assert dbt_build_args() == ["build", "--exclude-resource-type", "unit_test"]
    assert "--full-refresh" in dbt_build_args(full_refresh=True)
    assert "--full-refresh" not in dbt_build_args(test_all_rows=True)


def test_only_routine_builds_test_just_the_recent_rows() -> None:
    every_row = ["--vars", '{"recent_rows_hours": null}']
    assert dbt_build_args(full_refresh=True)[-2:] == every_row
    assert dbt_build_args(test_all_rows=True)[-2:] == every_row
    assert "--vars" not in dbt_build_args()  # the project's default: the last day's rows


def test_the_nightly_build_runs_every_model_and_tests_every_row() -> None:
    schedule = defs.resolve_schedule_def("build_models_nightly")
    assert schedule.job_name == "build_models"
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def("build_models")
    assert AssetKey(["marts", "bookings"]) in job.asset_layer.selected_asset_keys
    config = job.run_config["ops"][trainu_dbt_models.op.name]["config"]
    assert config == {"test_all_rows": True}


def test_models_sit_downstream_of_the_raw_tables() -> None:
    graph = defs.resolve_asset_graph()
    parents = graph.get(AssetKey(["staging", "stg_ghl__appointments"])).parent_keys
    assert parents == {AssetKey(["raw", "ghl_appointments"])}
    bookings = graph.get(AssetKey(["marts", "bookings"]))
    assert AssetKey(["staging", "stg_ghl__appointments"]) in bookings.parent_keys
    assert bookings.automation_condition is not None
    checks = {key.name for key in graph.asset_check_keys if key.asset_key == bookings.key}
    assert any(name.startswith("accepted_values_bookings_outcome") for name in checks), checks


def test_the_risk_bands_refresh_after_each_scoring_run() -> None:
    """app.insights is written by insights/client_risk, so dbt's source is that asset: the
    daily bands follow each scoring run instead of waiting for the nightly build."""
    graph = defs.resolve_asset_graph()
    insights = graph.get(AssetKey(["staging", "stg_app__insights"]))
    assert insights.parent_keys == {CLIENT_RISK}
    assert AssetKey(["marts", "risk_bands_daily"]) in insights.child_keys
    assert AssetKey(["marts", "client_activity"]) in graph.get(CLIENT_RISK).parent_keys
    # dbt -> scoring -> dbt: Dagster splits the dbt op around the scoring, so the asset
    # job (what automation runs) still resolves
    steps = {node.name for node in defs.resolve_implicit_global_asset_job_def().graph.nodes}
    assert "insights__client_risk" in steps


@pytest.fixture
def empty(template_database: Database) -> Iterator[Database]:
    """Migrated, nothing landed, no model ever built: a first start."""
    database = new_database(template_database, "dbt-first")
    yield database
    drop_database(database)


def dbt_resources(database: Database) -> dict:
    return {
        "dbt": DbtCliResource(project_dir=dbt_project),
        "database": PostgresResource(database_url=database.url()),
    }


def requested_by(tick) -> list[AssetKey]:  # noqa: ANN001
    return [k for k in defs.resolve_asset_graph().get_all_asset_keys() if tick.get_num_requested(k)]


def test_the_first_automatic_refresh_on_an_empty_database_builds_every_model(
    empty: Database,
) -> None:
    models = {
        key for key in defs.resolve_asset_graph().get_all_asset_keys()
        if key.path[0] in ("staging", "intermediate", "marts")
    }  # fmt: skip
    # what follows the marts eagerly: the day's risk scores and the drafts they call for
    acting = {AssetKey(["insights", "client_risk"]), AssetKey(["messaging", "state_drafts"])}
    with DagsterInstance.ephemeral() as instance:
        # The daemon's first ticks, before anything has landed (the very first only takes
        # stock): every model was never built, so every model is requested, in one run.
        initial = evaluate_automation_conditions(defs=defs, instance=instance)
        first = evaluate_automation_conditions(defs=defs, instance=instance, cursor=initial.cursor)
        assert set(requested_by(first)) == models | acting
        resources = dbt_resources(empty)
        built = materialize([trainu_dbt_models, client_risk, state_drafts],
                            selection=requested_by(first), resources=resources,
                            instance=instance)  # fmt: skip
        assert built.success
        checks = built.get_asset_check_evaluations()
        assert checks and all(c.passed for c in checks)

        settled = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        assert requested_by(settled) == []  # built: nothing to do until data lands
        # the first deliveries land and ingest reports the table: what reads it refreshes
        instance.report_runless_asset_event(AssetMaterialization(["raw", "ghl_contacts"]))
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=settled.cursor)
        refreshed = requested_by(second)
        assert AssetKey(["staging", "stg_ghl__contacts"]) in refreshed
        assert AssetKey(["marts", "goal_progress"]) not in refreshed
        again = materialize([trainu_dbt_models, client_risk, state_drafts], selection=refreshed,
                            resources=resources, instance=instance)  # fmt: skip
        assert again.success


def test_a_subset_refresh_never_tests_a_model_that_was_never_built(empty: Database) -> None:
    """`bookings` has a relationships test against `stg_ghl__contacts`: refreshing the
    contacts alone must not run it against a `bookings` that does not exist yet."""
    contacts = AssetKey(["staging", "stg_ghl__contacts"])
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [trainu_dbt_models], selection=[contacts], resources=dbt_resources(empty),
            instance=instance, raise_on_error=False,
        )  # fmt: skip
    assert result.success
    assert {e.asset_key for e in result.get_asset_materialization_events()} == {contacts}
    with empty.connect() as conn:
        bookings = conn.execute("SELECT to_regclass('marts.bookings')").fetchone()[0]
    assert bookings is None  # it really had never been built


@pytest.fixture(scope="module")
def loaded(template_database: Database) -> Iterator[Database]:
    """A small studio landed as webhooks and processed, with its app data."""
    database = new_database(template_database, "dbt-assets")
    studio = generate_studio("loc-dagster", trainers=2, clients=30, days=28, seed=4, now=NOW)
    land_and_process(database, webhooks_for(studio, creation_changes(studio)))
    with database.connect() as conn, conn.transaction():
        write_app_data(conn, studio)
    yield database
    drop_database(database)


def test_materialising_the_models_runs_dbt_build_with_checks_and_then_automation_refreshes_them(
    loaded: Database,
) -> None:
    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [trainu_dbt_models], resources=dbt_resources(loaded), instance=instance
        )
        assert result.success
        materialized = {e.asset_key for e in result.get_asset_materialization_events()}
        assert AssetKey(["marts", "show_rate_by_trainer_weekly"]) in materialized
        checks = result.get_asset_check_evaluations()
        assert len(checks) > 50 and all(c.passed for c in checks)
        with loaded.connect() as conn:
            assert conn.execute("SELECT count(*) FROM marts.bookings").fetchone()[0] > 100

        # Nothing new upstream: nothing to do. Then ingestion lands appointments...
        first = evaluate_automation_conditions(defs=defs, instance=instance)
        assert first.total_requested == 0
        instance.report_runless_asset_event(AssetMaterialization(["raw", "ghl_appointments"]))
        second = evaluate_automation_conditions(defs=defs, instance=instance, cursor=first.cursor)
        graph = defs.resolve_asset_graph()
        requested = {
            key.to_user_string()
            for key in graph.get_all_asset_keys()
            if second.get_num_requested(key)
        }
        # ...and everything below the appointments refreshes, nothing beside them.
        assert {
            "staging/stg_ghl__appointments",
            "marts/bookings",
            "marts/show_rate_by_location_weekly",
        } <= requested
        assert "marts/goal_progress" not in requested
