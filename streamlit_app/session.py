"""Sign-in state for the Streamlit app: every query runs as the signed-in user under RLS."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from zoneinfo import ZoneInfo

import psycopg
import streamlit as st

from trainu_dagster import accounts
from trainu_dagster.db.server import APP_ROLE, AUTH_ROLE, Database, connect_database
from trainu_dagster.messaging.policy import zone_or_utc
from trainu_dagster.settings import Settings, get_settings


@st.cache_resource
def _database(_settings: Settings, settings_id: int) -> Database:
    return connect_database(_settings, start_embedded=False)


def database() -> Database:
    """One connection factory per settings object (tests swap settings between studios)."""
    settings = get_settings()
    return _database(settings, id(settings))


def sign_in(email: str, password: str) -> bool:
    with database().connect(role=AUTH_ROLE) as conn:
        token = accounts.sign_in(conn, email, password, lifetime=get_settings().session_lifetime)
    if token is None:
        return False
    with database().connect(role=APP_ROLE) as conn:
        user = accounts.current_user(conn, token)
        assert user is not None
        with accounts.as_user(conn, token):
            accounts.record_ui_action(conn, user, "sign_in")
    st.session_state["token"] = token
    st.session_state["user"] = user
    st.session_state.pop("zone", None)  # another user's studio may be elsewhere
    return True


def sign_out() -> None:
    token = st.session_state.pop("token", None)
    st.session_state.pop("user", None)
    st.session_state.pop("zone", None)
    if token:
        with database().connect(role=APP_ROLE) as conn:
            accounts.sign_out(conn, token)


def current_user() -> accounts.User | None:
    return st.session_state.get("user")


def user() -> accounts.User:
    """The signed-in user, on pages only listed after sign-in."""
    signed_in = current_user()
    if signed_in is None:
        st.stop()
    return signed_in


@contextmanager
def as_signed_in_user() -> Iterator[psycopg.Connection]:
    """A transaction that sees exactly what RLS lets the signed-in user see."""
    token = st.session_state["token"]
    with database().connect(role=APP_ROLE) as conn, accounts.as_user(conn, token):
        yield conn


def studio_zone() -> ZoneInfo:
    """The signed-in user's studio timezone, read once per session: the app shows every
    time in it, as the dashboards count local days."""
    if "zone" not in st.session_state:
        with as_signed_in_user() as conn:
            row = conn.execute(
                "SELECT timezone FROM app.locations WHERE location_id = %s",
                (user().location_id,),
            ).fetchone()
        st.session_state["zone"] = zone_or_utc(row[0] if row else None)
    zone: ZoneInfo = st.session_state["zone"]
    return zone


def local_time(at: datetime) -> str:
    """A moment as the studio reads it: "Sun 06 Dec 09:44"."""
    return f"{at.astimezone(studio_zone()):%a %d %b %H:%M}"
