"""The Dagster code location loads, its instance config stores runs in Postgres, and the
run-failure sensor turns a real failed run into a product event."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from dagster import (
    DagsterInstance,
    SkipReason,
    build_run_status_sensor_context,
    build_sensor_context,
    in_process_executor,
    job,
    op,
)

from sensors import all_sensors
from sensors.run_failure import CORRELATION_TAG, record_run_failure
from trainu_dagster.assets.dbt import trainu_dbt_models
from trainu_dagster.db.server import Database, ensure_database_exists
from trainu_dagster.definitions import defs
from trainu_dagster.jobs import LANE, LOCATION_TAG
from trainu_dagster.resources.postgres import PostgresResource
from trainu_dagster.settings import PROJECT_ROOT
from trainu_dagster.stack import install_instance_config

DAGSTER = str(Path(sys.executable).parent / "dagster")


@pytest.fixture(scope="module")
def dagster_home(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    ensure_database_exists(database, database.dagster_database)
    home = install_instance_config(tmp_path_factory.mktemp("dagster_home"))
    previous = os.environ.get("TRAINU_DAGSTER_STORAGE_URL")
    os.environ["TRAINU_DAGSTER_STORAGE_URL"] = database.dagster_storage_url()
    yield home
    if previous is None:
        del os.environ["TRAINU_DAGSTER_STORAGE_URL"]


def test_definitions_validate_for_the_workspace(dagster_home: Path, database: Database) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "TRAINU_DATABASE_URL": database.url()}
    result = subprocess.run(
        [DAGSTER, "definitions", "validate", "--workspace", str(PROJECT_ROOT / "workspace.yaml")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr


def clone_of_the_repository(into: Path) -> Path:
    """The repository's files as a fresh clone has them (tracked and not ignored: no dbt
    manifest, no state), with this working tree's changes."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=PROJECT_ROOT, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = PROJECT_ROOT / name
        if source.is_file():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, into / name)
    return into


def test_a_fresh_clone_validates_with_dagsters_own_cli_and_nothing_set(tmp_path: Path) -> None:
    """`dagster definitions validate -w workspace.yaml` from the root of a clone with no
    manifest, no DAGSTER_HOME, no TrainU settings, not even the virtualenv on PATH: the
    code location builds dbt's manifest itself and Dagster uses a local instance."""
    clone = clone_of_the_repository(tmp_path / "clone")
    assert not (clone / "dbt_project" / "target" / "manifest.json").exists()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("TRAINU_", "DAGSTER_", "PG", "VIRTUAL_ENV"))}  # fmt: skip
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"
    result = subprocess.run(
        [DAGSTER, "definitions", "validate", "-w", "workspace.yaml"],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All code locations passed validation" in result.stdout + result.stderr
    assert (clone / "dbt_project" / "target" / "manifest.json").exists()


def test_dbt_builds_queue_one_at_a_time(dagster_home: Path) -> None:
    """Incremental models delete and re-insert what changed: two builds must not interleave,
    so every run with the dbt assets belongs to one run-level pool of one."""
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        pools = instance.get_concurrency_config().pool_config
    assert pools.default_pool_limit == 1
    assert pools.pool_granularity.value == "run"
    assert trainu_dbt_models.op.pool == "dbt"


LANDING_JOBS = {  # (and the send runs: they have a lane of their own too)
    "ingest_webhook_events": "ingest",
    "pull_ghl": "pull",
    "backfill_ghl_history": "backfill",
    "retry_dead_letters": "retry",
    "send_messages": "send",
}


def test_each_kind_of_landing_run_has_a_lane_of_one(dagster_home: Path) -> None:
    """One ingest run in flight (the sensor keeps one more queued), one pull, one backfill:
    none can fill the run slots the others, or the model refresh, need."""
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        runs = instance.get_concurrency_config().run_queue_config
    assert runs.max_concurrent_runs >= len(LANDING_JOBS) + 1  # + the dbt build
    [lanes] = runs.tag_concurrency_limits
    assert lanes["key"] == LANE and lanes["limit"] == 1
    assert lanes["value"] == {"applyLimitPerUniqueValue": True}
    for name, lane in LANDING_JOBS.items():
        landing = defs.resolve_job_def(name)
        assert landing.tags[LANE] == lane
        assert landing.tags["dagster/max_retries"] == "0"  # the sensors relaunch instead
    # every run, model refreshes too, is one process: quick to start, the code loaded once
    for name in [*LANDING_JOBS, "build_models"]:
        assert defs.resolve_job_def(name).executor_def is in_process_executor


def test_definitions_load_in_process() -> None:
    repository = defs.get_repository_def()
    assert {s.name for s in repository.sensor_defs} == {
        "webhook_events_sensor",
        "studio_backfill_sensor",
        "dlq_retry_sensor",
        "record_run_failure",
        "refresh_models_after_ingest",
        "outbox_sensor",
    }
    assert {j.name for j in repository.get_all_jobs()} >= {*LANDING_JOBS, "build_models"}
    raw_keys = {key.to_user_string() for key in repository.asset_graph.get_all_asset_keys()}
    assert {"raw/ghl_contacts", "raw/ghl_appointments", "raw/ghl_messages"} <= raw_keys


@op
def explode() -> None:
    raise RuntimeError("GHL answered 502 three times")


@job(tags={LOCATION_TAG: "L1"})
def failing_pull() -> None:
    explode()


def test_failed_run_becomes_a_run_failed_event(dagster_home: Path, database: Database) -> None:
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        result = failing_pull.execute_in_process(instance=instance, raise_on_error=False)
        assert not result.success
        stored = instance.get_run_by_id(result.run_id)  # persisted in Postgres storage
        assert stored is not None and stored.is_failure
        context = build_run_status_sensor_context(
            sensor_name="record_run_failure",
            dagster_event=result.get_run_failure_event(),
            dagster_instance=instance,
            dagster_run=stored,
            resources={"database": PostgresResource(database_url=database.url())},
        ).for_run_failure()
        record_run_failure(context)

    with database.connect() as conn:
        rows = conn.execute(
            """SELECT location_id, entity_id, properties->>'job', properties->>'error'
               FROM app.events WHERE event_type = 'run_failed'"""
        ).fetchall()
    assert len(rows) == 1
    location, run_id, job_name, error = rows[0]
    assert (location, run_id, job_name) == ("L1", result.run_id, "failing_pull")
    assert "explode" in error


def test_a_failed_runs_correlation_id_reaches_its_event_and_a_malformed_one_is_dropped(
    dagster_home: Path, database: Database
) -> None:
    """A run tagged with a correlation id carries it to its `run_failed` event; a tag that
    is not a UUID (anyone can tag a run) is left out, and the failure is still recorded."""
    correlation = uuid4()
    run_ids = {}
    with DagsterInstance.from_config(str(dagster_home)) as instance:
        for tag in (str(correlation), "not-a-uuid"):
            result = failing_pull.execute_in_process(
                instance=instance, raise_on_error=False, tags={CORRELATION_TAG: tag}
            )
            context = build_run_status_sensor_context(
                sensor_name="record_run_failure",
                dagster_event=result.get_run_failure_event(),
                dagster_instance=instance,
                dagster_run=instance.get_run_by_id(result.run_id),
                resources={"database": PostgresResource(database_url=database.url())},
            ).for_run_failure()
            record_run_failure(context)
            run_ids[tag] = result.run_id

    with database.connect() as conn:
        recorded = dict(
            conn.execute(
                """SELECT entity_id, correlation_id FROM app.events
                   WHERE event_type = 'run_failed' AND entity_id = ANY(%s)""",
                (list(run_ids.values()),),
            ).fetchall()
        )
    assert recorded == {run_ids[str(correlation)]: correlation, run_ids["not-a-uuid"]: None}


def test_without_the_database_every_sensor_skips_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`dagster dev` from a fresh clone has no TrainU database: each tick skips with the
    reason, instead of the same traceback every few seconds."""
    monkeypatch.delenv("TRAINU_DATABASE_URL", raising=False)
    monkeypatch.setenv("TRAINU_STATE_DIR", str(tmp_path / "state"))  # nothing running there
    resources = {"database": PostgresResource()}
    with DagsterInstance.ephemeral() as instance:
        for sensor in all_sensors:
            if sensor.name == "refresh_models_after_ingest":
                continue  # Dagster's own automation sensor: it reads no TrainU table
            if sensor.name == "record_run_failure":
                failed = failing_pull.execute_in_process(instance=instance, raise_on_error=False)
                context = build_run_status_sensor_context(
                    sensor_name=sensor.name,
                    dagster_event=failed.get_run_failure_event(),
                    dagster_instance=instance,
                    dagster_run=instance.get_run_by_id(failed.run_id),
                    resources=resources,
                ).for_run_failure()
            else:
                context = build_sensor_context(instance=instance, resources=resources)
            skipped = sensor(context)
            assert isinstance(skipped, SkipReason), sensor.name
            assert "database is not running" in (skipped.skip_message or ""), sensor.name
            assert "make up" in (skipped.skip_message or "")
