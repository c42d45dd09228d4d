"""People who sign in to TrainU, and the sessions that bind Row Level Security.

Passwords are hashed with Argon2id. Sign-in runs as the `trainu_auth` role, the only
role that may read password hashes and ask the database for a session token; the app
role then presents that token per transaction and sees exactly what RLS allows.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal
from uuid import UUID

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg.types.json import Jsonb

Role = Literal["owner", "trainer", "client"]
ROLES: tuple[Role, ...] = ("owner", "trainer", "client")
MIN_PASSWORD_LENGTH = 10

_hasher = PasswordHasher()
# Verified when the email is unknown, so a miss costs as much as a wrong password.
_DUMMY_HASH = _hasher.hash("not-a-real-password")


class AccountError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    id: UUID
    location_id: str
    email: str
    role: Role
    display_name: str


def normalise_email(email: str) -> str:
    cleaned = email.strip().lower()
    local, _, domain = cleaned.partition("@")
    if not local or "." not in domain:
        raise AccountError(f"not an email address: {email!r}")
    return cleaned


def create_user(
    conn: psycopg.Connection,
    *,
    location_id: str,
    email: str,
    password: str,
    role: Role,
    display_name: str,
) -> User:
    """Insert a user (admin connection). The location must exist."""
    if role not in ROLES:
        raise AccountError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    email = normalise_email(email)
    if (
        conn.execute(
            "SELECT 1 FROM app.locations WHERE location_id = %s", (location_id,)
        ).fetchone()
        is None
    ):
        raise AccountError(f"unknown location {location_id!r}: create it first")
    try:
        row = conn.execute(
            """
            INSERT INTO app.users (location_id, email, role, display_name, password_hash)
            VALUES (%s, %s, %s, %s, %s)
            RETURNING id
            """,
            (location_id, email, role, display_name, _hasher.hash(password)),
        ).fetchone()
    except psycopg.errors.UniqueViolation as exc:
        raise AccountError(f"a user with email {email} already exists") from exc
    assert row is not None
    return User(
        id=row[0], location_id=location_id, email=email, role=role, display_name=display_name
    )


def sign_in(
    auth_conn: psycopg.Connection, email: str, password: str, *, lifetime: timedelta
) -> str | None:
    """Return a session token for valid credentials, else None (same cost either way)."""
    try:
        email = normalise_email(email)
    except AccountError:
        return None
    row = auth_conn.execute(
        "SELECT id, password_hash FROM app.users WHERE email = %s AND disabled_at IS NULL",
        (email,),
    ).fetchone()
    user_id, password_hash = row if row else (None, _DUMMY_HASH)
    try:
        _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return None
    if user_id is None:
        return None
    row = auth_conn.execute("SELECT app.issue_session(%s, %s)", (user_id, lifetime)).fetchone()
    auth_conn.commit()
    assert row is not None
    token: str = row[0]
    return token


@contextmanager
def as_user(app_conn: psycopg.Connection, token: str) -> Iterator[psycopg.Connection]:
    """One transaction on the app connection, bound to the signed-in user's session."""
    with app_conn.transaction():
        app_conn.execute("SELECT set_config('trainu.session_token', %s, true)", (token,))
        yield app_conn


def current_user(app_conn: psycopg.Connection, token: str) -> User | None:
    with as_user(app_conn, token) as conn:
        row = conn.execute(
            """
            SELECT id, location_id, email, role, display_name
            FROM app.users WHERE id = app.session_user_id()
            """
        ).fetchone()
    return User(*row) if row else None


def record_ui_action(
    conn: psycopg.Connection,
    user: User,
    action: str,
    *,
    entity_type: str | None = None,
    entity_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append to the audit log; RLS only accepts rows in the signed-in user's own name."""
    conn.execute(
        """
        INSERT INTO app.audit_log (location_id, user_id, action, entity_type, entity_id, details)
        VALUES (%s, %s, %s, %s, %s, %s)
        """,
        (user.location_id, user.id, action, entity_type, entity_id, Jsonb(details or {})),
    )


def sign_out(app_conn: psycopg.Connection, token: str) -> None:
    with as_user(app_conn, token) as conn:
        conn.execute("SELECT app.end_session()")


@dataclass(frozen=True)
class DemoAccount:
    email: str
    password: str
    role: Role
    display_name: str


def create_demo_accounts(conn: psycopg.Connection, location_id: str) -> list[DemoAccount]:
    """Sign-ins for a simulated studio, made once: an owner, the two trainers with the most
    clients (each linked to their trainer row), and one of the first trainer's clients.

    Returns the accounts with their one-time random passwords, to print once; returns
    nothing if the studio already has users, so a restart never resets a password. Only
    the simulator calls this: a real studio's owner invites real people.
    """
    if conn.execute("SELECT 1 FROM app.users WHERE location_id = %s", (location_id,)).fetchone():
        return []
    trainers = conn.execute(
        """SELECT t.id, t.name FROM app.trainers t JOIN app.clients c ON c.trainer_id = t.id
           WHERE t.location_id = %s AND c.opted_out_at IS NULL
           GROUP BY t.id, t.name ORDER BY count(*) DESC, t.name LIMIT 2""",
        (location_id,),
    ).fetchall()
    if len(trainers) < 2:
        raise AccountError(f"studio {location_id!r} needs two trainers with clients for a demo")
    client = conn.execute(
        """SELECT id, name FROM app.clients WHERE trainer_id = %s AND opted_out_at IS NULL
           ORDER BY name LIMIT 1""",
        (trainers[0][0],),
    ).fetchone()
    assert client is not None
    domain = f"{location_id.lower().replace('_', '-')}.demo.trainu.example"
    people: list[tuple[Role, str, str, str | None, UUID | None]] = [
        ("owner", "owner", "Studio owner", None, None),
        ("trainer", "trainer1", trainers[0][1], "trainers", trainers[0][0]),
        ("trainer", "trainer2", trainers[1][1], "trainers", trainers[1][0]),
        ("client", "client", client[1], "clients", client[0]),
    ]
    made = []
    for role, local, name, table, row_id in people:
        password = secrets.token_urlsafe(12)
        user = create_user(conn, location_id=location_id, email=f"{local}@{domain}",
                           password=password, role=role, display_name=name)  # fmt: skip
        if table == "trainers":
            conn.execute("UPDATE app.trainers SET user_id = %s WHERE id = %s", (user.id, row_id))
        elif table == "clients":
            conn.execute("UPDATE app.clients SET user_id = %s WHERE id = %s", (user.id, row_id))
        made.append(DemoAccount(user.email, password, role, name))
    return made
