"""Row Level Security, checked through the real app role against the real database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest

from tests.rls_world import LEAD_CONTACT, PASSWORD, World, build_world, contact
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, AUTH_ROLE, Database

CLIENT_TABLES = [
    "app.clients",
    "app.goals",
    "app.goal_entries",
    "app.insights",
    "app.messages",
    "app.agent_events",
]
CONTACT_TABLES = [
    "raw.ghl_contacts",
    "raw.ghl_appointments",
    "raw.ghl_messages",
    "raw.ghl_opportunities",
]
OWNER_ONLY_TABLES = ["app.events", "raw.webhook_events", "raw.pull_state", "ops.sync_queue"]
L1 = {"a1", "a2", "b1"}


def scope(clients: set[str], *, insights: bool = True, opportunities: bool = True) -> dict:
    expected = {table: clients for table in CLIENT_TABLES + CONTACT_TABLES}
    if not insights:
        expected["app.insights"] = expected["app.agent_events"] = set()
    if not opportunities:
        expected["raw.ghl_opportunities"] = set()
    return expected


EXPECTED = {
    "owner-L1": scope(L1) | {"raw.ghl_contacts": L1 | {"lead"}},
    "owner-L2": scope({"c1"}),
    "trainer-A": scope({"a1", "a2"}),
    "trainer-B": scope({"b1"}),
    "trainer-C": scope({"c1"}),
    "client-a1": scope({"a1"}, insights=False, opportunities=False),
}


@pytest.fixture(scope="module")
def world(database: Database) -> World:
    return build_world(database)


@pytest.fixture
def app_conn(database: Database) -> Iterator[psycopg.Connection]:
    with database.connect(role=APP_ROLE) as conn:
        yield conn


def visible_clients(conn: psycopg.Connection, world: World, table: str) -> set[str]:
    if table in CONTACT_TABLES:
        by_contact = {contact(name): name for name in world.client_ids} | {LEAD_CONTACT: "lead"}
        rows = conn.execute(f"SELECT contact_id FROM {table}").fetchall()
        return {by_contact[r[0]] for r in rows}
    column = "id" if table == "app.clients" else "client_id"
    rows = conn.execute(f"SELECT {column} FROM {table}").fetchall()
    return {world.client_names[r[0]] for r in rows}


def count_all(conn: psycopg.Connection, tables: list[str]) -> dict[str, int]:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in tables}


@pytest.mark.parametrize("who", sorted(EXPECTED))
def test_each_person_sees_exactly_their_scope(
    who: str, world: World, app_conn: psycopg.Connection
) -> None:
    with accounts.as_user(app_conn, world.token(who)) as conn:
        seen = {t: visible_clients(conn, world, t) for t in CLIENT_TABLES + CONTACT_TABLES}
    assert seen == EXPECTED[who]


def test_trainer_reads_zero_rows_of_another_trainers_clients(
    world: World, app_conn: psycopg.Connection
) -> None:
    b1 = world.client_ids["b1"]
    with accounts.as_user(app_conn, world.token("trainer-A")) as conn:
        for table in CLIENT_TABLES:
            column = "id" if table == "app.clients" else "client_id"
            assert conn.execute(
                f"SELECT count(*) FROM {table} WHERE {column} = %s", (b1,)
            ).fetchone() == (0,)
        for table in CONTACT_TABLES:
            rows = conn.execute(
                f"SELECT count(*) FROM {table} WHERE contact_id = %s", (contact("b1"),)
            )
            assert rows.fetchone() == (0,)


def test_owner_sees_their_location_only(world: World, app_conn: psycopg.Connection) -> None:
    with accounts.as_user(app_conn, world.token("owner-L1")) as conn:
        for table in OWNER_ONLY_TABLES + ["app.locations", "app.users", "app.trainers"]:
            locations = {r[0] for r in conn.execute(f"SELECT location_id FROM {table}")}
            assert locations == {"L1"}, table
        assert count_all(conn, ["app.users", "app.trainers"]) == {"app.users": 4, "app.trainers": 2}


def test_trainers_and_clients_see_no_operational_rows_and_only_themselves(
    world: World, app_conn: psycopg.Connection
) -> None:
    for who in ("trainer-A", "client-a1"):
        with accounts.as_user(app_conn, world.token(who)) as conn:
            assert set(count_all(conn, OWNER_ONLY_TABLES + ["app.audit_log"]).values()) == {0}
            users = conn.execute("SELECT id FROM app.users").fetchall()
            assert users == [(world.users[who].id,)]
            assert conn.execute("SELECT location_id FROM app.locations").fetchall() == [("L1",)]


def test_client_sees_only_messages_that_reached_them(
    world: World, app_conn: psycopg.Connection
) -> None:
    with accounts.as_user(app_conn, world.token("client-a1")) as conn:
        statuses = {r[0] for r in conn.execute("SELECT status FROM app.messages")}
    assert statuses == {"sent", "received"}


def test_without_a_session_nothing_is_visible(world: World, app_conn: psycopg.Connection) -> None:
    every_table = (
        CLIENT_TABLES
        + CONTACT_TABLES
        + OWNER_ONLY_TABLES
        + ["app.locations", "app.users", "app.trainers", "app.audit_log"]
    )
    assert set(count_all(app_conn, every_table).values()) == {0}
    app_conn.rollback()
    with accounts.as_user(app_conn, "f" * 64) as conn:
        assert set(count_all(conn, every_table).values()) == {0}


def test_forged_settings_do_not_widen_access(world: World, app_conn: psycopg.Connection) -> None:
    owner = world.users["owner-L1"]
    app_conn.autocommit = True
    forged = [
        ("trainu.user_id", str(owner.id)),
        ("trainu.role", "owner"),
        ("trainu.location_id", "L1"),
        ("trainu.session_token", str(owner.id)),
    ]
    for name, value in forged:
        app_conn.execute("SELECT set_config(%s, %s, false)", (name, value))
    assert count_all(app_conn, ["app.clients", "raw.ghl_contacts", "app.events"]) == {
        "app.clients": 0,
        "raw.ghl_contacts": 0,
        "app.events": 0,
    }


@pytest.mark.parametrize(
    ("statement", "error"),
    [
        ("SET ROLE postgres", psycopg.errors.InsufficientPrivilege),
        ("SET ROLE trainu_auth", psycopg.errors.InsufficientPrivilege),
        ("SELECT set_config('role', 'postgres', false)", psycopg.errors.InsufficientPrivilege),
        ("SET SESSION AUTHORIZATION postgres", psycopg.errors.InsufficientPrivilege),
        (
            "ALTER TABLE app.clients DISABLE ROW LEVEL SECURITY",
            psycopg.errors.InsufficientPrivilege,
        ),
        (
            "ALTER TABLE app.clients NO FORCE ROW LEVEL SECURITY",
            psycopg.errors.InsufficientPrivilege,
        ),
        ("DROP POLICY clients_select_3 ON app.clients", psycopg.errors.InsufficientPrivilege),
        ("SELECT * FROM app.sessions", psycopg.errors.InsufficientPrivilege),
        ("SELECT password_hash FROM app.users", psycopg.errors.InsufficientPrivilege),
        (
            "SELECT app.issue_session(gen_random_uuid(), '1 hour')",
            psycopg.errors.InsufficientPrivilege,
        ),
        (
            "CREATE FUNCTION app.me() RETURNS int LANGUAGE sql AS 'SELECT 1'",
            psycopg.errors.InsufficientPrivilege,
        ),
        ("CREATE TEMP TABLE t (x int)", psycopg.errors.InsufficientPrivilege),
    ],
)
def test_privilege_escalation_attempts_are_refused(
    world: World, app_conn: psycopg.Connection, statement: str, error: type[Exception]
) -> None:
    with pytest.raises(error):
        app_conn.execute(statement)


def test_turning_row_security_off_refuses_the_query(
    world: World, app_conn: psycopg.Connection
) -> None:
    app_conn.execute("SET row_security = off")
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"):
        app_conn.execute("SELECT * FROM app.clients")


def test_trainer_cannot_write_to_another_trainers_clients(
    world: World, app_conn: psycopg.Connection
) -> None:
    token = world.token("trainer-A")
    with accounts.as_user(app_conn, token) as conn:
        updated = conn.execute(
            """UPDATE app.messages SET status = 'rejected', rejected_reason = 'x'
               WHERE client_id = %s""",
            (world.client_ids["b1"],),
        )
        assert updated.rowcount == 0
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
        accounts.as_user(app_conn, token) as conn,
    ):
        conn.execute(
            """INSERT INTO app.goals (location_id, client_id, goal_type, title, unit, direction,
                       baseline_value, target_value, start_date, target_date)
                   VALUES ('L1', %s, 'strength', 'Squat', 'kg', 'increase', 60, 100,
                           '2026-01-01', '2026-06-01')""",
            (world.client_ids["b1"],),
        )
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege, match="row-level security"),
        accounts.as_user(app_conn, token) as conn,
    ):
        conn.execute(
            """INSERT INTO app.events (location_id, event_type, actor, actor_user_id)
                   VALUES ('L1', 'draft_approved', 'user', %s)""",
            (world.users["owner-L1"].id,),
        )
    with (
        pytest.raises(psycopg.errors.InsufficientPrivilege),
        accounts.as_user(app_conn, token) as conn,
    ):
        conn.execute("UPDATE app.clients SET location_id = 'L2'")


def test_client_cannot_approve_or_edit_messages(world: World, app_conn: psycopg.Connection) -> None:
    with accounts.as_user(app_conn, world.token("client-a1")) as conn:
        updated = conn.execute("UPDATE app.messages SET body = 'hacked'")
        assert updated.rowcount == 0


def test_trainer_can_act_on_own_clients(world: World, app_conn: psycopg.Connection) -> None:
    trainer = world.users["trainer-A"]
    with accounts.as_user(app_conn, world.token("trainer-A")) as conn:
        rejected = conn.execute(
            """UPDATE app.messages SET status = 'rejected', rejected_reason = 'tone'
               WHERE client_id = %s AND status = 'pending_approval'""",
            (world.client_ids["a2"],),
        )
        assert rejected.rowcount == 1
        conn.execute(
            """INSERT INTO app.events (location_id, event_type, actor, actor_user_id)
               VALUES ('L1', 'draft_rejected', 'user', %s)""",
            (trainer.id,),
        )


def test_signed_out_expired_and_disabled_sessions_see_nothing(
    world: World, database: Database, app_conn: psycopg.Connection
) -> None:
    signed_out = world.token("trainer-B")
    accounts.sign_out(app_conn, signed_out)
    with database.connect(role=AUTH_ROLE) as auth:
        expired = accounts.sign_in(
            auth, "trainer-B@example.com", PASSWORD, lifetime=timedelta(microseconds=1)
        )
    for token in (signed_out, expired):
        with accounts.as_user(app_conn, token) as conn:
            assert count_all(conn, ["app.clients"]) == {"app.clients": 0}

    live = world.token("trainer-C")
    with database.connect() as admin:
        admin.execute(
            "UPDATE app.users SET disabled_at = now() WHERE email = 'trainer-c@example.com'"
        )
    try:
        with accounts.as_user(app_conn, live) as conn:
            assert count_all(conn, ["app.clients"]) == {"app.clients": 0}
    finally:
        with database.connect() as admin:
            admin.execute(
                "UPDATE app.users SET disabled_at = NULL WHERE email = 'trainer-c@example.com'"
            )
