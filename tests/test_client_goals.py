"""A client's own page: their goals with the goal_progress mart's numbers, their upcoming
sessions, and nobody else's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.app_harness import app_pointed_at, signed_in
from tests.dbt_harness import dbt_ok
from tests.rls_world import (
    NOW,
    World,
    build_world,
    contact,
    insert_booking,
    land_ghl_rows,
)
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.reporting import client_goals


@pytest.fixture(scope="module")
def world(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = build_world(database)
    ahead = (datetime.now(UTC) - NOW).days + 3  # a session after today, whatever today is
    with database.connect() as conn:
        land_ghl_rows(conn)
        insert_booking(conn, "L1", "appt-a1-ahead", contact("a1"), "ghl-user-A", "new", ahead)
    dbt_ok(
        database, tmp_path_factory.mktemp("dbt"), "build", "--exclude-resource-type", "unit_test"
    )
    with app_pointed_at(database):
        yield world


def test_a_client_reads_only_their_own_goals(world: World) -> None:
    for who, clients in (("client-a1", {"a1"}), ("trainer-A", {"a1", "a2"})):
        with (
            world.database.connect(role=APP_ROLE) as conn,
            accounts.as_user(conn, world.token(who)),
        ):
            goals = client_goals.goals(conn)
        assert {world.client_names[c] for c in goals["client_id"]} == clients


def test_the_goals_page_shows_the_marts_numbers_and_upcoming_sessions(world: World) -> None:
    with world.database.connect() as conn:
        percent, latest = conn.execute(
            "SELECT percent_complete, latest_value FROM marts.goal_progress WHERE client_id = %s",
            (world.client_ids["a1"],),
        ).fetchone()
    app = signed_in("client-a1@example.com", page="views/my_goals.py")
    assert not app.exception
    assert app.title[0].value == "My goals"
    assert "Lose 5 kg" in [t.value for t in app.text]
    metrics = {m.label: m.value for m in app.metric}
    assert metrics["Progress"] == f"{percent:.0f}%"
    assert metrics["Now (kg)"] == f"{float(latest):g}"
    [sessions] = app.dataframe
    assert len(sessions.value) == 1  # the one ahead; the others are past or another client's
    with pytest.raises(ValueError, match="Known pages"):
        app.switch_page("views/inbox.py")
