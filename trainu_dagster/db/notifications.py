"""Waiting on Postgres notifications: how a long-lived run sleeps until there is work.

A channel is notified when work appears (by the receiver once a webhook landed, by a
trigger when a message was approved); the run `LISTEN`s on an autocommit connection of its
own and, between passes, blocks here instead of polling the tables.
"""

from __future__ import annotations

import threading
import time

import psycopg

STOP_CHECK_SECONDS = 0.25


def listen(conn: psycopg.Connection, channel: str) -> None:
    """Subscribe `conn` (autocommit) to `channel`, a name from our own migrations."""
    conn.execute(f"LISTEN {channel}")


def await_notification(
    listener: psycopg.Connection, timeout: float, stop: threading.Event | None = None
) -> None:
    """Block until a notification arrives, `timeout` passes or `stop` is set (looked at
    every quarter second); notifications that piled up meanwhile are swallowed too, since
    one look at the work serves them all."""
    deadline = time.monotonic() + timeout
    while stop is None or not stop.is_set():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        wait = min(remaining, STOP_CHECK_SECONDS)
        if any(True for _ in listener.notifies(timeout=wait, stop_after=1)):
            break
    for _ in listener.notifies(timeout=0):
        pass
