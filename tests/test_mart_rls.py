"""Row Level Security on the dbt marts, through the real app role after a real `dbt build`.

Two studios (tests/rls_world.py) get real bookings and GHL messages; dbt builds the marts
once, then again incrementally after a late booking lands. Each signed-in user then reads
every mart as `trainu_app`, and must see exactly the rows the administrative role sees
for their scope: an owner their studio, a trainer their own clients and their own
trainer rows, a client their own bookings, messages and goals, and no session nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.dbt_harness import dbt_ok
from tests.rls_world import (
    CLIENTS,
    LEAD_CONTACT,
    NOW,
    World,
    add_draft,
    build_world,
    contact,
    decide_draft,
    insert_booking,
    land_ghl_rows,
    unassign_draft,
)
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, Database

AS_OF = {"as_of": NOW.isoformat()}
INCREMENTAL = {"bookings", "messages", "risk_bands_daily"}

# mart -> the column that says whose row it is
MARTS = {
    "bookings": "contact_id",
    "messages": "contact_id",
    "goal_progress": "client_id",
    "client_activity": "client_id",
    "message_metrics": "location_id",
    "show_rate_by_location_weekly": "location_id",
    "show_rate_by_location_monthly": "location_id",
    "show_rate_by_trainer_weekly": "trainer_user_id",
    "show_rate_by_trainer_monthly": "trainer_user_id",
    "message_funnel": "trainer_user_id",
    "client_retention": "location_id",
    "risk_bands_daily": "location_id",
}
TRAINER_MARTS = ["show_rate_by_trainer_weekly", "show_rate_by_trainer_monthly", "message_funnel"]
LOCATION_MARTS = [
    "message_metrics",
    "show_rate_by_location_weekly",
    "show_rate_by_location_monthly",
    "client_retention",
    "risk_bands_daily",
]
L1 = {"a1", "a2", "b1"}
LATE_BOOKING = "appt-a1-late"


def scope(
    clients: set[str],
    *,
    lead: bool = False,
    staff: bool = True,
    locations: frozenset[str] = frozenset(),
    trainers: frozenset[str] = frozenset(),
) -> dict[str, set[str]]:
    return {
        "bookings": clients | ({"lead"} if lead else set()),
        "messages": set(clients),
        "goal_progress": set(clients),
        "client_activity": set(clients) if staff else set(),
        **{mart: set(locations) for mart in LOCATION_MARTS},
        **{mart: set(trainers) for mart in TRAINER_MARTS},
    }


EXPECTED = {
    "owner-L1": scope(
        L1, lead=True, locations=frozenset({"L1"}), trainers=frozenset({"A", "B", "unassigned"})
    ),
    "owner-L2": scope({"c1"}, locations=frozenset({"L2"}), trainers=frozenset({"C"})),
    "trainer-A": scope({"a1", "a2"}, trainers=frozenset({"A"})),
    "trainer-B": scope({"b1"}, trainers=frozenset({"B"})),
    "trainer-C": scope({"c1"}, trainers=frozenset({"C"})),
    "client-a1": scope({"a1"}, staff=False),
}


@dataclass
class Built:
    world: World
    work: Path
    oids_first_run: dict[str, int]
    oids_second_run: dict[str, int]


def mart_oids(database: Database) -> dict[str, int]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT relname, oid::bigint FROM pg_class WHERE relnamespace = 'marts'::regnamespace"
            " AND relkind = 'r'"
        ).fetchall()
    return dict(rows)


@pytest.fixture(scope="module")
def built(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The world built once, then a late booking landed and the marts built again."""
    world = build_world(database)
    with database.connect() as conn:
        land_ghl_rows(conn)
    # drafts decided and sent for every trainer, and one with no trainer (the owner's)
    for client in CLIENTS:
        draft = add_draft(world, client, "reminder")
        sent = NOW - timedelta(days=2)
        decide_draft(world, draft, "approved_unedited", drafted_at=sent, decided_at=sent,
                     sent_at=sent)  # fmt: skip
    unassign_draft(world, add_draft(world, "a2", "re_engagement"))
    work = tmp_path_factory.mktemp("dbt")
    dbt_ok(database, work, "build", variables=AS_OF)
    first = mart_oids(database)
    with database.connect() as conn:
        insert_booking(conn, "L1", LATE_BOOKING, contact("a1"), "ghl-user-A", "confirmed", 5)
    dbt_ok(database, work, "build", variables=AS_OF)
    return Built(world, work, first, mart_oids(database))


@pytest.fixture
def app_conn(database: Database) -> Iterator[psycopg.Connection]:
    with database.connect(role=APP_ROLE) as conn:
        yield conn


def labelled_rows(conn: psycopg.Connection, world: World, mart: str) -> list[tuple[str, Any]]:
    """Every row of a mart, sorted, with whose row it is: a client's name, a location, a
    trainer's letter (or unassigned)."""
    by_contact = {contact(name): name for name in CLIENTS} | {LEAD_CONTACT: "lead"}
    cursor = conn.execute(f"SELECT * FROM marts.{mart}")
    column = [c.name for c in cursor.description].index(MARTS[mart])
    labelled = []
    for row in cursor.fetchall():
        value = row[column]
        if MARTS[mart] == "contact_id":
            label = by_contact[value]
        elif MARTS[mart] == "client_id":
            label = world.client_names[value]
        elif MARTS[mart] == "trainer_user_id":
            label = value.removeprefix("ghl-user-") if value else "unassigned"
        else:
            label = value
        labelled.append((label, row))
    return sorted(labelled, key=repr)


def every_row(built: Built) -> dict[str, list[tuple[str, Any]]]:
    """Each mart as the administrative role (superuser: RLS does not apply) reads it."""
    with built.world.database.connect() as conn:
        return {mart: labelled_rows(conn, built.world, mart) for mart in MARTS}


def visible_rows(app_conn: psycopg.Connection, built: Built, token: str) -> dict[str, list]:
    with accounts.as_user(app_conn, token) as conn:
        return {mart: labelled_rows(conn, built.world, mart) for mart in MARTS}


def test_the_world_fills_every_mart_for_every_scope(built: Built) -> None:
    labels = {mart: {label for label, _ in rows} for mart, rows in every_row(built).items()}
    everyone = set(CLIENTS)
    assert labels == scope(
        everyone,
        lead=True,
        locations=frozenset({"L1", "L2"}),
        trainers=frozenset({"A", "B", "C", "unassigned"}),
    )


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_each_person_sees_exactly_their_rows_of_every_mart(
    who: str, built: Built, app_conn: psycopg.Connection
) -> None:
    everything = every_row(built)
    seen = visible_rows(app_conn, built, built.world.token(who))
    expected = {
        mart: [(label, row) for label, row in rows if label in EXPECTED[who][mart]]
        for mart, rows in everything.items()
    }
    assert seen == expected


def test_owners_see_only_their_own_studio(built: Built, app_conn: psycopg.Connection) -> None:
    for owner, location in (("owner-L1", "L1"), ("owner-L2", "L2")):
        with accounts.as_user(app_conn, built.world.token(owner)) as conn:
            for mart in MARTS:
                locations = {r[0] for r in conn.execute(f"SELECT location_id FROM marts.{mart}")}
                assert locations == {location}, (owner, mart)


def test_a_trainer_reads_zero_rows_of_another_trainers_clients(
    built: Built, app_conn: psycopg.Connection
) -> None:
    b1 = built.world.client_ids["b1"]
    with accounts.as_user(app_conn, built.world.token("trainer-A")) as conn:
        for mart in ("bookings", "messages"):
            count = conn.execute(
                f"SELECT count(*) FROM marts.{mart} WHERE contact_id = %s", (contact("b1"),)
            )
            assert count.fetchone() == (0,), mart
        for mart in ("goal_progress", "client_activity"):
            count = conn.execute(f"SELECT count(*) FROM marts.{mart} WHERE client_id = %s", (b1,))
            assert count.fetchone() == (0,), mart
        for mart in TRAINER_MARTS:
            trainers = conn.execute(f"SELECT DISTINCT trainer_user_id FROM marts.{mart}")
            assert trainers.fetchall() == [("ghl-user-A",)], mart


def test_without_a_session_no_mart_shows_a_row(built: Built, app_conn: psycopg.Connection) -> None:
    with app_conn.transaction():
        no_token = {mart: labelled_rows(app_conn, built.world, mart) for mart in MARTS}
    assert no_token == {mart: [] for mart in MARTS}
    forged = visible_rows(app_conn, built, "f" * 64)
    assert forged == {mart: [] for mart in MARTS}


def test_the_incremental_run_kept_its_tables_and_their_policies(
    built: Built, app_conn: psycopg.Connection
) -> None:
    for mart in MARTS:
        kept = built.oids_first_run[mart] == built.oids_second_run[mart]
        assert kept == (mart in INCREMENTAL), mart  # incremental marts merged in place
    for who, sees_it in (
        ("owner-L1", True),
        ("trainer-A", True),
        ("client-a1", True),
        ("trainer-B", False),
        ("owner-L2", False),
    ):
        with accounts.as_user(app_conn, built.world.token(who)) as conn:
            found = conn.execute(
                "SELECT count(*) FROM marts.bookings WHERE appointment_id = %s", (LATE_BOOKING,)
            ).fetchone()
        assert found == (1 if sees_it else 0,), who


NEW_MARTS = ("message_funnel", "client_retention", "risk_bands_daily")


def test_an_owner_never_sees_another_studios_funnel_retention_or_risk_rows(
    built: Built, app_conn: psycopg.Connection
) -> None:
    with built.world.database.connect() as conn:
        everywhere = {
            mart: dict(conn.execute(
                f"SELECT location_id, count(*) FROM marts.{mart} GROUP BY 1"
            ).fetchall())
            for mart in NEW_MARTS
        }  # fmt: skip
    assert all(set(counts) == {"L1", "L2"} for counts in everywhere.values()), everywhere
    for owner, location in (("owner-L1", "L1"), ("owner-L2", "L2")):
        with accounts.as_user(app_conn, built.world.token(owner)) as conn:
            for mart in NEW_MARTS:
                seen = dict(
                    conn.execute(f"SELECT location_id, count(*) FROM marts.{mart} GROUP BY 1")
                )
                assert seen == {location: everywhere[mart][location]}, (owner, mart)


def test_a_trainer_sees_only_their_own_funnel_rows_and_no_studio_numbers(
    built: Built, app_conn: psycopg.Connection
) -> None:
    with built.world.database.connect() as conn:
        owners_view = conn.execute(
            "SELECT trainer_user_id, purpose, drafted, sent FROM marts.message_funnel"
            " WHERE location_id = 'L1' ORDER BY 1, 2"
        ).fetchall()
    assert owners_view == [
        ("ghl-user-A", "reminder", 2, 2),
        ("ghl-user-B", "reminder", 1, 1),
        (None, "re_engagement", 1, 0),  # unassigned: the owner's alone
    ]
    for trainer, own in (("A", owners_view[:1]), ("B", owners_view[1:2])):
        with accounts.as_user(app_conn, built.world.token(f"trainer-{trainer}")) as conn:
            funnel = conn.execute(
                "SELECT trainer_user_id, purpose, drafted, sent FROM marts.message_funnel"
                " ORDER BY 1, 2"
            ).fetchall()
            studio = {
                mart: conn.execute(f"SELECT count(*) FROM marts.{mart}").fetchone()[0]
                for mart in ("client_retention", "risk_bands_daily")
            }
        assert funnel == own, trainer
        assert studio == {"client_retention": 0, "risk_bands_daily": 0}, trainer


def mart_models(work: Path) -> set[str]:
    manifest = json.loads((work / "target" / "manifest.json").read_text())
    return {
        node["name"]
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["fqn"][1] == "marts"
    }


def test_every_mart_has_row_security_forced_and_an_app_role_policy(built: Built) -> None:
    models = mart_models(built.work)
    assert models == set(MARTS)  # a new mart needs its scope here, and its tenant_scope
    with built.world.database.connect() as conn:
        relations = conn.execute(
            """SELECT c.relname, c.relkind, c.relrowsecurity, c.relforcerowsecurity,
                      has_table_privilege('trainu_app', c.oid, 'SELECT'),
                      has_schema_privilege('trainu_app', 'marts', 'USAGE')
               FROM pg_class c
               WHERE c.relnamespace = 'marts'::regnamespace
                 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"""
        ).fetchall()
        policies = conn.execute(
            """SELECT tablename, policyname, cmd, roles::text[], permissive
               FROM pg_policies WHERE schemaname = 'marts'"""
        ).fetchall()
    assert {r[0]: r[1:] for r in relations} == {m: ("r", True, True, True, True) for m in models}
    assert sorted(policies) == sorted(
        (m, "tenant_isolation", "SELECT", ["trainu_app"], "PERMISSIVE") for m in models
    )


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE marts.bookings DISABLE ROW LEVEL SECURITY",
        "ALTER TABLE marts.bookings NO FORCE ROW LEVEL SECURITY",
        "DROP POLICY tenant_isolation ON marts.bookings",
        "CREATE POLICY everyone ON marts.bookings FOR SELECT USING (true)",
        # views run as their owner, who bypasses RLS: the app role cannot read them
        "SELECT count(*) FROM staging.stg_ghl__appointments",
        "SELECT count(*) FROM intermediate.int_bookings__daily",
        "SELECT count(*) FROM intermediate.int_attendance__monthly",
    ],
)
def test_the_app_role_cannot_get_around_the_mart_policies(
    built: Built, app_conn: psycopg.Connection, statement: str
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app_conn.execute(statement)


def test_turning_row_security_off_refuses_to_read_a_mart(
    built: Built, app_conn: psycopg.Connection
) -> None:
    app_conn.execute("SET row_security = off")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        app_conn.execute("SELECT * FROM marts.goal_progress")


def test_a_full_refresh_rebuilds_the_marts_with_their_policies(
    built: Built, app_conn: psycopg.Connection
) -> None:
    dbt_ok(
        built.world.database,
        built.work,
        "run",
        "--full-refresh",
        "--select",
        "path:models/marts",
        variables=AS_OF,
    )
    rebuilt = mart_oids(built.world.database)
    assert all(rebuilt[m] != built.oids_second_run[m] for m in MARTS), rebuilt
    everything = every_row(built)
    for who in ("owner-L2", "trainer-A", "client-a1"):
        seen = visible_rows(app_conn, built, built.world.token(who))
        assert seen == {
            mart: [(label, row) for label, row in rows if label in EXPECTED[who][mart]]
            for mart, rows in everything.items()
        }, who
    test_every_mart_has_row_security_forced_and_an_app_role_policy(built)
