"""Sign-ins: Argon2 hashes, the auth role, and session tokens that bind RLS."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, AUTH_ROLE, Database

PASSWORD = "a long enough password"
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module", autouse=True)
def owner(database: Database) -> accounts.User:
    with database.connect() as conn:
        conn.execute("INSERT INTO app.locations (location_id, name) VALUES ('L1', 'Studio')")
        return accounts.create_user(
            conn,
            location_id="L1",
            email="Owner@Example.com",
            password=PASSWORD,
            role="owner",
            display_name="Olive",
        )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"password": "short"}, "at least 10 characters"),
        ({"email": "not-an-email"}, "not an email address"),
        ({"location_id": "nowhere"}, "unknown location"),
        ({"role": "admin"}, "role must be one of"),
        ({"email": "owner@example.com"}, "already exists"),
    ],
)
def test_bad_accounts_are_refused_with_a_clear_reason(
    admin_conn: psycopg.Connection, changes: dict, message: str
) -> None:
    fields = {
        "location_id": "L1",
        "email": "new@example.com",
        "password": PASSWORD,
        "role": "trainer",
        "display_name": "New",
    } | changes
    with pytest.raises(accounts.AccountError, match=message):
        accounts.create_user(admin_conn, **fields)


def test_passwords_are_stored_as_argon2id_hashes(
    admin_conn: psycopg.Connection, owner: accounts.User
) -> None:
    stored = admin_conn.execute("SELECT email, password_hash FROM app.users").fetchone()
    assert stored[0] == "owner@example.com"
    assert stored[1].startswith("$argon2id$") and PASSWORD not in stored[1]


def test_sign_in_issues_a_session_for_the_right_password_only(
    database: Database, owner: accounts.User
) -> None:
    with database.connect(role=AUTH_ROLE) as auth:
        assert accounts.sign_in(auth, "owner@example.com", "wrong password!", lifetime=HOUR) is None
        assert accounts.sign_in(auth, "nobody@example.com", PASSWORD, lifetime=HOUR) is None
        assert accounts.sign_in(auth, "garbage", PASSWORD, lifetime=HOUR) is None
        token = accounts.sign_in(auth, " OWNER@example.com ", PASSWORD, lifetime=HOUR)
    assert token is not None and len(token) == 64
    with database.connect(role=APP_ROLE) as app:
        assert accounts.current_user(app, token) == owner
        accounts.sign_out(app, token)
        assert accounts.current_user(app, token) is None


def test_the_database_keeps_only_token_hashes(database: Database) -> None:
    with database.connect(role=AUTH_ROLE) as auth:
        token = accounts.sign_in(auth, "owner@example.com", PASSWORD, lifetime=HOUR)
    with database.connect() as admin:
        hashes = [bytes(r[0]) for r in admin.execute("SELECT token_hash FROM app.sessions")]
    assert token is not None
    assert all(token.encode() not in h for h in hashes)
    assert all(len(h) == 32 for h in hashes)


def test_a_simulated_studio_gets_demo_accounts_once_that_sign_in_to_their_own_scope(
    database: Database,
) -> None:
    from ghl_simulator import generate_studio, write_app_data

    studio = generate_studio("loc-demo", trainers=3, clients=40, days=14, seed=5)
    with database.connect() as conn:
        conn.execute("INSERT INTO app.locations (location_id, name) VALUES ('loc-demo', 'Demo')")
        write_app_data(conn, studio)
        demo = accounts.create_demo_accounts(conn, "loc-demo")
        again = accounts.create_demo_accounts(conn, "loc-demo")
    assert [a.role for a in demo] == ["owner", "trainer", "trainer", "client"]
    assert again == []
    visible = {}
    for account in demo:
        with database.connect(role=AUTH_ROLE) as conn:
            token = accounts.sign_in(conn, account.email, account.password, lifetime=HOUR)
        assert token is not None, account.email
        with database.connect(role=APP_ROLE) as conn, accounts.as_user(conn, token):
            visible[account.email] = {r[0] for r in conn.execute("SELECT id FROM app.clients")}
    owner, first, second, client = (visible[a.email] for a in demo)
    assert first and second and not first & second and first | second <= owner
    assert len(client) == 1 and client <= first
