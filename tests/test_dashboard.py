"""The owner's dashboard shows the marts' numbers for the owner's studio only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from streamlit.testing.v1 import AppTest

from tests.app_harness import app_pointed_at, signed_in
from tests.dbt_harness import dbt_ok
from tests.rls_world import World, build_world, land_ghl_rows
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.reporting import dashboards


@pytest.fixture(scope="module")
def world(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = build_world(database)
    with database.connect() as conn:
        land_ghl_rows(conn)
        # one draft decided by trainer A: edited, then approved
        conn.execute(
            """UPDATE app.messages SET status = 'approved', body = 'Edited', approved_body =
                   'Edited', approved_by = %s, approved_at = now(), decision = 'approved_edited',
                   decided_at = now(), purpose = 'confirmation'
               WHERE client_id = %s AND status = 'pending_approval'""",
            (world.users["trainer-A"].id, world.client_ids["a1"]),
        )
    dbt_ok(
        database, tmp_path_factory.mktemp("dbt"), "build", "--exclude-resource-type", "unit_test"
    )
    with app_pointed_at(database):
        yield world


def dashboard(email: str) -> AppTest:
    app = signed_in(email, page="views/dashboard.py", timeout=60)
    assert not app.exception
    return app


def shown(app: AppTest, key: str):
    """The dataframe placed just before the download button `key`."""
    frames = {b.key: f for b, f in zip(app.get("download_button"), app.dataframe, strict=False)}
    return frames[key].value


@pytest.mark.parametrize("owner", ["owner-L1", "owner-L2"])
def test_the_attendance_table_is_the_marts_weekly_show_rate_for_the_owners_studio(
    world: World, owner: str
) -> None:
    location = owner.split("-")[1]
    app = dashboard(f"{owner}@example.com")
    today = datetime.now(UTC).date()
    start = today - timedelta(weeks=12)
    start -= timedelta(days=start.weekday())
    with world.database.connect() as conn:
        expected = conn.execute(
            """SELECT period_start, booked, showed, no_shows, show_rate::float
               FROM marts.show_rate_by_location_weekly
               WHERE location_id = %s AND period_start BETWEEN %s AND %s ORDER BY period_start""",
            (location, start, today),
        ).fetchall()
    assert expected, "the world has bookings in the last 12 weeks"
    table = shown(app, "csv-attendance")
    assert set(table["location_name"]) == {f"Studio {location}"}
    got = [
        (r.period_start, r.booked, r.showed, r.no_shows, r.show_rate) for r in table.itertuples()
    ]
    assert got == [tuple(row) for row in expected]


def test_acceptance_by_trainer_counts_the_decisions(world: World) -> None:
    app = dashboard("owner-L1@example.com")
    decisions = shown(app, "csv-draft-decisions")
    assert decisions.to_dict("records") == [
        {"trainer": "Trainer A", "purpose": "confirmation", "approved": 0, "edited": 1,
         "rejected": 0, "acceptance_rate": 1.0}
    ]  # fmt: skip


def test_a_trainer_reads_no_studio_numbers_even_without_the_page(world: World) -> None:
    with (
        world.database.connect(role=APP_ROLE) as conn,
        accounts.as_user(conn, world.token("trainer-A")),
    ):
        today = datetime.now(UTC).date()
        studio = dashboards.show_rates(
            conn, grain="week", by="studio", start=today - timedelta(weeks=12), end=today
        )
        own = dashboards.show_rates(
            conn, grain="week", by="trainer", start=today - timedelta(weeks=12), end=today
        )
    assert studio.empty
    assert set(own["trainer_name"]) == {"Trainer A"}
