"""The Streamlit app signs people in and shows them only what RLS allows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.app_harness import app_pointed_at, signed_in
from tests.rls_world import PASSWORD, World, build_world
from trainu_dagster.db.server import Database


@pytest.fixture(scope="module")
def world(database: Database) -> Iterator[World]:
    world = build_world(database)
    with app_pointed_at(database):
        yield world


def test_wrong_password_is_refused(world: World) -> None:
    app = signed_in("trainer-A@example.com", "not the password")
    assert [e.value for e in app.error] == [
        "That email and password do not match an active account."
    ]
    assert app.title[0].value == "TrainU"


@pytest.mark.parametrize(
    ("who", "clients"), [("owner-L1", 3), ("trainer-A", 2), ("trainer-B", 1), ("client-a1", 1)]
)
def test_home_shows_the_signed_in_users_scope(world: World, who: str, clients: int) -> None:
    app = signed_in(f"{who}@example.com", PASSWORD)
    assert not app.exception
    assert app.title[0].value == f"Welcome, {who}"
    metrics = {m.label: m.value for m in app.metric}
    assert [int(v) for v in metrics.values()] == [clients, clients]
    with world.database.connect() as conn:
        audit = conn.execute(
            """SELECT a.action FROM app.audit_log a JOIN app.users u ON u.id = a.user_id
               WHERE u.email = %s""",
            (f"{who.lower()}@example.com",),
        ).fetchall()
    assert ("sign_in",) in audit


def test_sign_out_returns_to_the_sign_in_page(world: World) -> None:
    app = signed_in("owner-L2@example.com", PASSWORD)
    assert app.title[0].value == "Welcome, owner-L2"
    app.sidebar.button[0].click()
    app.run()
    assert app.title[0].value == "TrainU"
