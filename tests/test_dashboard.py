"""The owner's dashboard shows the marts' numbers for the owner's studio only."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from tests.app_harness import app_pointed_at, signed_in
from tests.dbt_harness import dbt_ok
from tests.rls_world import (
    NOW,
    World,
    add_draft,
    build_world,
    contact,
    decide_draft,
    insert_booking,
    land_ghl_rows,
)
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.reporting import dashboards


@pytest.fixture(scope="module")
def world(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    world = build_world(database)
    with database.connect() as conn:
        land_ghl_rows(conn)  # each client's GHL reply lands at NOW - 1 day
        # earlier sessions: a1 also came in October (retained in November), a2 in
        # September and not October (reactivated in November)
        insert_booking(conn, "L1", "appt-a1-oct", contact("a1"), "ghl-user-A", "showed", -40)
        insert_booking(conn, "L1", "appt-a2-sep", contact("a2"), "ghl-user-A", "showed", -70)
    for client, purpose, decision, drafted, sent in DRAFTS:
        draft = add_draft(world, client, purpose)
        decide_draft(
            world,
            draft,
            decision,
            drafted_at=NOW - timedelta(days=drafted),
            decided_at=NOW - timedelta(days=drafted),
            sent_at=None if sent is None else NOW - timedelta(days=sent),
        )
    dbt_ok(
        database, tmp_path_factory.mktemp("dbt"), "build", "--exclude-resource-type", "unit_test"
    )
    with app_pointed_at(database):
        yield world


# (client, purpose, decision, drafted and decided days before NOW, sent days before NOW)
DRAFTS = [
    ("a1", "confirmation", "approved_edited", 2, None),
    ("a2", "reminder", "approved_unedited", 4, 3),  # the reply 2 days later: replied
    ("a1", "reminder", "approved_unedited", 12, 10),  # the reply 9 days later: not replied
    ("b1", "re_engagement", "rejected", 4, None),
    ("c1", "reminder", "approved_unedited", 2, 2),  # the other studio's, replied
]
FUNNEL_COLUMNS = ["drafted", "decided", "approved", "edited", "rejected", "sent", "replied",
                  "acceptance_rate", "reply_rate"]  # fmt: skip


def dashboard(email: str, section: str = "Attendance") -> AppTest:
    """The dashboard as `email` sees it with the tab `section` open."""
    app = signed_in(email, page="views/dashboard.py", timeout=60)
    assert not app.exception
    if section != "Attendance":
        app.session_state["section"] = section
        app.run()
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
    app = dashboard("owner-L1@example.com", "Messages")
    decisions = shown(app, "csv-draft-decisions")
    assert decisions.to_dict("records") == [
        {"trainer": "Trainer A", "purpose": "confirmation", "approved": 0, "edited": 1,
         "rejected": 0, "acceptance_rate": 1.0},
        {"trainer": "Trainer A", "purpose": "reminder", "approved": 2, "edited": 0,
         "rejected": 0, "acceptance_rate": 1.0},
        {"trainer": "Trainer B", "purpose": "re_engagement", "approved": 0, "edited": 0,
         "rejected": 1, "acceptance_rate": 0.0},
    ]  # fmt: skip


def funnel_rows(table: pd.DataFrame) -> dict[str, list]:
    """The funnel table by week, a rate with nothing to divide by as None."""
    return {
        str(row["local_week"]): [None if pd.isna(row[c]) else row[c] for c in FUNNEL_COLUMNS]
        for _, row in table.iterrows()
    }


def test_the_message_funnel_counts_drafts_to_replies_within_7_days(world: World) -> None:
    """A sent draft the client answered 2 days later is replied; one answered 9 days
    later is not; each draft counts in the local week it was made."""
    app = dashboard("owner-L1@example.com", "Messages")
    assert funnel_rows(shown(app, "csv-message-funnel")) == {
        # a1's reminder, sent on the 10th, answered on the 19th
        "2026-11-02": [1, 1, 1, 0, 0, 1, 0, 1.0, 0.0],
        # a1's edited confirmation (not sent), a2's reminder sent and answered the next
        # day but one, b1's rejected re-engagement
        "2026-11-16": [3, 3, 2, 1, 1, 1, 1, 0.6667, 1.0],
    }
    metrics = {m.label: m.value for m in app.metric}
    stages = [metrics[stage] for stage in ("Drafted", "Approved", "Sent", "Replied")]
    assert stages == ["4", "3", "2", "1"]
    other = dashboard("owner-L2@example.com", "Messages")
    assert funnel_rows(shown(other, "csv-message-funnel")) == {
        "2026-11-16": [1, 1, 1, 0, 0, 1, 1, 1.0, 1.0]
    }


def test_retention_counts_new_retained_reactivated_and_churned_clients(world: World) -> None:
    app = dashboard("owner-L1@example.com", "Retention")
    table = shown(app, "csv-retention")
    rows = {
        f"{row.local_month:%Y-%m}": (row.active, row.new, row.retained, row.reactivated,
                                     row.churned, row.previous_active)
        for row in table.itertuples()
    }  # fmt: skip
    assert list(rows)[:3] == ["2026-09", "2026-10", "2026-11"]
    assert rows["2026-09"] == (1, 1, 0, 0, 0, 0)  # a2's first session
    assert rows["2026-10"] == (1, 1, 0, 0, 1, 1)  # a1 new; a2 did not come back
    # a1 retained, a2 back, b1 and the lead's trial new
    assert rows["2026-11"] == (4, 2, 1, 1, 0, 1)
    later = [rows[month] for month in list(rows)[3:]]  # nothing booked since November
    assert later and later[0] == (0, 0, 0, 0, 4, 4)
    assert all(month[:4] == (0, 0, 0, 0) for month in later)
    rates = table["retention_rate"].tolist()
    assert pd.isna(rates[0]) and rates[1:3] == [0.0, 1.0]  # nobody came in August


def test_clients_at_risk_come_from_the_daily_bands(world: World) -> None:
    app = dashboard("owner-L1@example.com", "Clients at risk")
    bands = shown(app, "csv-risk-bands")
    assert [(str(r.day), r.risk_band, r.clients) for r in bands.itertuples()] == [
        ("2026-11-20", "high", 3)
    ]


def test_each_tab_reads_only_its_own_marts_and_the_trainer_filter_narrows_them(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    with world.database.connect() as conn:
        trainer_b = str(
            conn.execute("SELECT id FROM app.trainers WHERE name = 'Trainer B'").fetchone()[0]
        )
    reads: list[tuple[str, dict]] = []
    for name in ("show_rates", "upcoming_bookings", "risk_bands", "funnel", "acceptance",
                 "retention"):  # fmt: skip
        read = getattr(dashboards, name)

        def recorded(conn, *args, _read=read, _name=name, **kwargs):  # noqa: ANN001, ANN202
            reads.append((_name, kwargs))
            return _read(conn, *args, **kwargs)

        monkeypatch.setattr(dashboards, name, recorded)

    app = dashboard("owner-L1@example.com")
    assert [(n, r["by"], r.get("trainer_id")) for n, r in reads] == [("show_rates", "studio", None)]
    reads.clear()
    app.selectbox[0].select(trainer_b).run()
    assert not app.exception
    assert [(n, r["by"], r["trainer_id"]) for n, r in reads] == [
        ("show_rates", "trainer", trainer_b)
    ]
    assert set(shown(app, "csv-attendance")["trainer_name"]) == {"Trainer B"}

    reads.clear()
    app.session_state["section"] = "Messages"
    app.run()
    assert not app.exception
    assert [name for name, _ in reads] == ["funnel", "acceptance"]
    assert funnel_rows(shown(app, "csv-message-funnel")) == {
        "2026-11-16": [1, 1, 0, 0, 1, 0, 0, 0.0, None]
    }
    assert shown(app, "csv-draft-decisions")["trainer"].tolist() == ["Trainer B"]

    app.session_state["section"] = "By trainer"
    app.run()
    assert not app.exception
    every_trainer = {"Trainer A", "Trainer B", "unassigned"}  # a booking without a trainer
    assert set(shown(app, "csv-attendance-by-trainer")["trainer_name"]) == every_trainer


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
