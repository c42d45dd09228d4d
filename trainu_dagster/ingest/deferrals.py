"""When the receivers answered 429, so that GHL's redeliveries are believed, not refused.

GHL redelivers a 429'd webhook up to 6 times about 10 minutes apart with the original
body, so with its original signed `timestamp`: long outside the replay window. A
delivery that is that old is accepted only if it was sent while a receiver was answering
429 (a database outage, the rate limit, a bug). Those periods ("episodes") are kept in
memory and written to `ops.webhook_deferrals`, so every replica behind the load balancer,
and a receiver restarted since, believes the redelivery too. During an outage the table
cannot be written: the episode is written once the database answers again (every few
seconds the log tries).

Replays stay refused: a body sent outside every episode is still stale, and one sent
during an episode lands at most once (its `webhookId` is the idempotency key).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)

# GHL redelivers for about an hour (6 × ~10 min); accepted for twice that.
REDELIVERY_GRACE = timedelta(hours=2)
EPISODE_GAP = timedelta(minutes=1)  # 429s further apart than this are separate episodes
FLUSH_SECONDS = 5.0

UPSERT = """
INSERT INTO ops.webhook_deferrals AS d (receiver, started_at, ended_at, deliveries)
VALUES (%s, %s, %s, %s)
ON CONFLICT (receiver, started_at)
DO UPDATE SET ended_at = excluded.ended_at, deliveries = excluded.deliveries
"""
COVERS = """
SELECT EXISTS (SELECT FROM ops.webhook_deferrals
               WHERE started_at - %(slack)s <= %(sent)s AND %(sent)s <= ended_at + %(slack)s
                 AND ended_at > now() - %(grace)s)
"""


@dataclass
class Episode:
    started_at: datetime
    ended_at: datetime
    deliveries: int = 1
    written: tuple[datetime, int] | None = None  # (ended_at, deliveries) as last written

    @property
    def state(self) -> tuple[datetime, int]:
        return self.ended_at, self.deliveries

    def covers(self, sent_at: datetime, slack: timedelta) -> bool:
        return self.started_at - slack <= sent_at <= self.ended_at + slack


class DeferralLog:
    """This receiver's episodes; `covers` also asks the table, for the other receivers'."""

    def __init__(self, dsn: str, *, slack: timedelta) -> None:
        self._dsn = dsn
        self._slack = slack  # the replay window: the sender's clock may be off by as much
        self._receiver = f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"
        self._episodes: list[Episode] = []
        self._conn: psycopg.AsyncConnection | None = None
        self._lock = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    def note(self, at: datetime) -> None:
        """This receiver answered 429 at `at`."""
        last = self._episodes[-1] if self._episodes else None
        if last is not None and at - last.ended_at <= EPISODE_GAP:
            last.ended_at, last.deliveries = max(last.ended_at, at), last.deliveries + 1
        else:
            self._episodes.append(Episode(at, at))
        self._episodes = [e for e in self._episodes if e.ended_at > at - REDELIVERY_GRACE]

    async def covers(self, sent_at: datetime) -> bool:
        """Whether a delivery sent at `sent_at` may be a redelivery of one a receiver
        answered 429. Raises psycopg.Error / OSError when the table cannot be read."""
        recent = datetime.now(UTC) - REDELIVERY_GRACE
        if any(e.ended_at > recent and e.covers(sent_at, self._slack) for e in self._episodes):
            return True
        async with self._lock:
            conn = await self._connection()
            try:
                cursor = await conn.execute(
                    COVERS, {"sent": sent_at, "slack": self._slack, "grace": REDELIVERY_GRACE}
                )
                row = await cursor.fetchone()
            except (psycopg.Error, OSError):
                await self._close()
                raise
        return bool(row and row[0])

    async def flush(self) -> None:
        """Write the episodes that changed; kept for the next try if the database is down."""
        pending = [(e, e.state) for e in self._episodes if e.written != e.state]
        if not pending:
            return
        async with self._lock:
            try:
                conn = await self._connection()
                async with conn.transaction():
                    for e, (ended_at, deliveries) in pending:
                        values = (self._receiver, e.started_at, ended_at, deliveries)
                        await conn.execute(UPSERT, values)
            except (psycopg.Error, OSError) as exc:
                await self._close()
                log.info("webhook_deferrals_unwritten", error=type(exc).__name__)
                return
        for e, state in pending:  # a 429 noted meanwhile is written next time
            e.written = state

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_every(), name="webhook-deferrals")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await self.flush()  # a last try: a restarted receiver then still knows
        await self._close()

    async def _flush_every(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_SECONDS)
            await self.flush()

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self._dsn, connect_timeout=2, autocommit=True
            )
        return self._conn

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()
            self._conn = None
