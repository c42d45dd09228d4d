"""Sync health: the owner sees their studio's deliveries, pulls and dead letters, and
retries or discards an item through the same functions as the CLI."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_harness import app_pointed_at, signed_in
from tests.rls_world import World, build_world
from trainu_dagster.db.server import Database


@pytest.fixture(scope="module")
def world(database: Database) -> Iterator[World]:
    world = build_world(database)
    with database.connect() as conn:
        conn.execute(
            """INSERT INTO app.events (location_id, event_type, actor, entity_type, entity_id,
                                       properties)
               VALUES ('L1', 'run_failed', 'system:dagster', 'dagster_run', 'run-123',
                       '{"job": "ingest_webhook_events", "error": "boom"}')"""
        )
    with app_pointed_at(database):
        yield world


def sync_health(email: str) -> AppTest:
    app = signed_in(email, page="views/sync_health.py")
    assert not app.exception
    return app


def item_of(world: World, location: str) -> tuple:
    with world.database.connect() as conn:
        return conn.execute(
            """SELECT id, status, attempts, resolved_by, resolution_note FROM ops.sync_queue
               WHERE location_id = %s""",
            (location,),
        ).fetchone()


def test_the_owner_sees_their_studios_dead_letters_and_failed_runs(world: World) -> None:
    app = sync_health("owner-L2@example.com")
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Dead letters open"] == "1"
    item_id = item_of(world, "L2")[0]
    assert [b.key for b in app.button if (b.key or "").startswith("retry-")] == [f"retry-{item_id}"]
    assert "No failed runs." in [c.value for c in app.caption]
    l1 = sync_health("owner-L1@example.com")
    [runs] = [d.value for d in l1.dataframe if "run_id" in d.value.columns]
    assert list(runs["run_id"]) == ["run-123"]
    assert runs["link"][0].endswith("/runs/run-123")


def test_a_retry_that_fails_again_is_recorded_and_said(world: World) -> None:
    item_id, _, attempts, _, _ = item_of(world, "L1")
    app = sync_health("owner-L1@example.com")
    [retry] = [b for b in app.button if b.key == f"retry-{item_id}"]
    retry.click()
    app.run()
    assert app.error and app.error[0].value.startswith(f"Item {item_id}: ")
    assert item_of(world, "L1")[2] == attempts + 1


def test_discarding_needs_a_reason_and_records_who(world: World) -> None:
    item_id = item_of(world, "L1")[0]
    app = sync_health("owner-L1@example.com")
    [discard] = [b for b in app.button if b.key == f"discard-{item_id}"]
    discard.click()
    app.run()
    assert [e.value for e in app.error] == ["Say why the item is discarded."]
    [why] = [t for t in app.text_input if t.key == f"why-{item_id}"]
    why.input("test delivery from GHL support")
    [discard] = [b for b in app.button if b.key == f"discard-{item_id}"]
    discard.click()
    app.run()
    _, status, _, resolved_by, note = item_of(world, "L1")
    assert (status, resolved_by, note) == (
        "discarded", "user:owner-l1@example.com", "test delivery from GHL support",
    )  # fmt: skip
    with world.database.connect() as conn:
        audit = conn.execute(
            "SELECT details FROM app.audit_log WHERE action = 'dlq_discard'"
        ).fetchall()
    assert audit == [({"outcome": "discarded"},)]
    assert item_of(world, "L2")[1] == "pending"
