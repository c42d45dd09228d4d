"""Studio settings: the owner's rules for sending, validated, audited, and the kill switch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime, time

import psycopg
import pytest
from streamlit.testing.v1 import AppTest

from tests.app_harness import app_pointed_at, signed_in
from tests.rls_world import World, build_world
from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, Database
from trainu_dagster.messaging import studio_settings
from trainu_dagster.messaging.studio_settings import SettingsError

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def world(database: Database) -> Iterator[World]:
    world = build_world(database)
    with app_pointed_at(database):
        yield world


@contextmanager
def as_user(world: World, who: str) -> Iterator[psycopg.Connection]:
    with world.database.connect(role=APP_ROLE) as conn, accounts.as_user(conn, world.token(who)):
        yield conn


def audit(world: World, action: str) -> list[dict]:
    with world.database.connect() as conn:
        rows = conn.execute(
            "SELECT details FROM app.audit_log WHERE action = %s ORDER BY id", (action,)
        )
        return [r[0] for r in rows]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"quiet_hours_start": time(21), "quiet_hours_end": time(8)}, "must start before"),
        ({"max_messages_per_day": 4, "max_messages_per_week": 3}, "daily cap"),
        ({"max_messages_per_week": 99}, "between 0 and 50"),
        ({"allowed_link_domains": ["not a domain"]}, "not a web domain"),
    ],
)
def test_settings_that_make_no_sense_are_refused_with_the_reason(change, problem) -> None:
    with pytest.raises(SettingsError, match=problem):
        studio_settings.validated(replace(studio_settings.StudioSettings("L1"), **change))


def test_link_domains_are_stored_as_registered_domains() -> None:
    settings = studio_settings.validated(
        studio_settings.StudioSettings(
            "L1", allowed_link_domains=["https://www.IronOak.fit/book", "ironoak.fit", " "]
        )
    )
    assert settings.allowed_link_domains == ["ironoak.fit"]


def test_the_owner_saves_and_the_change_is_audited_with_before_and_after(world: World) -> None:
    with as_user(world, "owner-L1") as conn:
        current = studio_settings.load(conn, "L1")
        assert (current.quiet_hours_start, current.max_messages_per_week) == (time(8), 3)
        edit = replace(current, quiet_hours_end=time(20), draft_voice={"tone": "upbeat"})
        changed = studio_settings.save(conn, world.users["owner-L1"], edit)
        assert studio_settings.save(conn, world.users["owner-L1"], edit) == []
    assert changed == ["draft_voice", "quiet_hours_end"]
    with as_user(world, "owner-L1") as conn:
        assert studio_settings.load(conn, "L1").quiet_hours_end == time(20)
    [details] = audit(world, "settings_changed")
    assert details["changed"]["quiet_hours_end"] == {"from": "21:00:00", "to": "20:00:00"}
    with as_user(world, "owner-L2") as conn:
        assert studio_settings.load(conn, "L2").quiet_hours_end == time(21)


def test_a_trainer_cannot_change_the_studios_settings(world: World) -> None:
    with as_user(world, "trainer-A") as conn:
        current = studio_settings.load(conn, "L1")
        with pytest.raises(SettingsError, match="only the studio's owner"):
            studio_settings.save(
                conn, world.users["trainer-A"], replace(current, max_messages_per_day=0)
            )
        assert not studio_settings.set_sending_paused(conn, world.users["trainer-A"], True, now=NOW)
    with world.database.connect() as conn:
        assert conn.execute(
            "SELECT max_messages_per_day, sending_paused_at FROM app.locations "
            "WHERE location_id = 'L1'"
        ).fetchone() == (1, None)


def signed_in_owner() -> AppTest:
    return signed_in("owner-L2@example.com", page="views/settings.py")


def test_the_kill_switch_on_the_page_stops_sending_and_is_recorded(world: World) -> None:
    app = signed_in_owner()
    assert not app.exception and app.title[0].value == "Settings"
    [stop] = [b for b in app.button if b.label == "Stop all sending now"]
    stop.click()
    app.run()
    assert [s.value for s in app.success] == ["All sending is stopped."]
    with world.database.connect() as conn:
        paused_by = conn.execute(
            "SELECT sending_paused_by FROM app.locations WHERE location_id = 'L2'"
        ).fetchone()[0]
        events = conn.execute(
            """SELECT event_type FROM app.events
               WHERE location_id = 'L2' AND event_type LIKE 'sending_%'"""
        ).fetchall()
    assert paused_by == world.users["owner-L2"].id
    assert events == [("sending_paused",)]
    assert audit(world, "sending_paused")
    [resume] = [b for b in app.button if b.label == "Resume sending"]
    resume.click()
    app.run()
    with world.database.connect() as conn:
        assert conn.execute(
            "SELECT sending_paused_at FROM app.locations WHERE location_id = 'L2'"
        ).fetchone() == (None,)


def test_the_settings_form_saves_and_explains_a_refusal(world: World) -> None:
    app = signed_in_owner()
    app.number_input[0].set_value(5)
    app.button[[b.label for b in app.button].index("Save settings")].click()
    app.run()
    assert [e.value for e in app.error] == [
        "Not saved: the daily cap cannot be above the weekly cap."
    ]
    app.number_input[1].set_value(10)
    app.text_area[0].input("https://book.ironoak.fit/now\n")
    app.button[[b.label for b in app.button].index("Save settings")].click()
    app.run()
    assert not app.error, [e.value for e in app.error]
    with world.database.connect() as conn:
        assert conn.execute(
            """SELECT max_messages_per_day, max_messages_per_week, allowed_link_domains
               FROM app.locations WHERE location_id = 'L2'"""
        ).fetchone() == (5, 10, ["ironoak.fit"])
