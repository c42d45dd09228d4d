"""Waiting on Postgres notifications: how a long-lived run sleeps until there is work.

A trigger `pg_notify`s a channel when work appears (a webhook landed, a message was
approved); the run `LISTEN`s on an autocommit connection of its own and, between passes,
blocks here instead of polling the tables.
"""

from __future__ import annotations

import psycopg


def listen(conn: psycopg.Connection, channel: str) -> None:
    """Subscribe `conn` (autocommit) to `channel`, a name from our own migrations."""
    conn.execute(f"LISTEN {channel}")


def await_notification(listener: psycopg.Connection, timeout: float) -> None:
    """Block until a notification arrives or `timeout` passes; notifications that piled up
    meanwhile are swallowed too, since one look at the work serves them all."""
    for _ in listener.notifies(timeout=max(timeout, 0.0), stop_after=1):
        break
    for _ in listener.notifies(timeout=0):
        pass
