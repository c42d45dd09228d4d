"""A client's goals with the goal_progress mart's numbers, seen by the client (their own
page: goals, upcoming sessions, nobody else's) and by their trainer (the inbox's client
panel: risk over time, bookings, goals)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.app_harness import app_pointed_at, signed_in
from tests.dbt_harness import dbt_ok
from tests.rls_world import (
    NOW,
    World,
    add_draft,
    build_world,
    contact,
    insert_booking,
    land_ghl_rows,
)
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.reporting import client_goals, client_panel


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


def score(world: World, client: str, days_ago: int, risk: float, band: str) -> None:
    with world.database.connect() as conn:
        conn.execute(
            """INSERT INTO app.insights (location_id, client_id, scored_at, risk_score,
                                         risk_band, reasons, reason, model_version)
               SELECT location_id, id, %s, %s, %s, '[]', 'fewer sessions', 'panel-test'
               FROM app.clients WHERE id = %s""",
            (NOW - timedelta(days=days_ago), risk, band, world.client_ids[client]),
        )


def test_the_client_panel_shows_one_clients_risk_history_and_bookings_to_their_trainer(
    world: World,
) -> None:
    for days_ago, risk, band in ((20, 0.2, "low"), (10, 0.5, "medium"), (1, 0.8, "high")):
        score(world, "a2", days_ago, risk, band)
    a2 = world.client_ids["a2"]
    with (
        world.database.connect(role=APP_ROLE) as conn,
        accounts.as_user(conn, world.token("trainer-A")),
    ):
        history = client_panel.risk_history(conn, a2)
        booked = client_panel.bookings(conn, a2)
    mine = history[history["reason"] == "fewer sessions"]  # the world scored a2 once too
    assert list(mine["risk_band"]) == ["low", "medium", "high"]
    assert list(mine["risk_score"]) == [0.2, 0.5, 0.8]
    assert history["scored_at"].is_monotonic_increasing
    # newest first: the session ahead, the no-show yesterday, the session attended
    assert list(booked["outcome"]) == ["open", "no_show", "showed"]
    with (
        world.database.connect(role=APP_ROLE) as conn,
        accounts.as_user(conn, world.token("trainer-B")),
    ):
        assert client_panel.risk_history(conn, a2).empty
        assert client_panel.bookings(conn, a2).empty
        assert client_goals.goals(conn, a2).empty


def test_the_inbox_opens_a_clients_panel_from_their_draft(world: World) -> None:
    draft = add_draft(world, "a1", "confirmation")
    score(world, "a1", 2, 0.4, "medium")
    app = signed_in("trainer-A@example.com", page="views/inbox.py")
    assert not app.exception and not app.dataframe  # closed until asked for
    app.toggle(key=f"panel-{draft}").set_value(True)
    app.run()
    assert not app.exception
    booked, goals = (frame.value for frame in app.dataframe)
    assert list(booked["outcome"]) == ["open", "open", "no_show", "showed"]
    assert list(goals["title"]) == ["Lose 5 kg"]
    assert len(app.get("vega_lite_chart")) == 1  # the risk score over time
