"""Durable landing of verified webhooks with group commit.

Every request waits until its row is committed in `raw.webhook_events` before it is
answered 2xx. Committing each request on its own would cap throughput at the disk's
flush rate, so concurrent requests queue here and one writer commits them together:
while a batch is being committed the next one fills up, and batches grow with load.
A duplicate (same idempotency key) is acknowledged without a second row. Once a batch with
new rows is durable, the ingest run is woken (`LANDED_CHANNEL`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import orjson
import psycopg
from psycopg.types.json import Jsonb

from trainu_dagster.ghl.payloads import Envelope, Route
from trainu_dagster.ghl.signatures import Scheme
from trainu_dagster.observability.analytics import ProductAnalytics
from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)

# The whole batch travels as one JSON document: serialising it is a single C call
# (orjson), where per-value adaptation of a dozen arrays would cost more than the request.
# Bodies are valid UTF-8 (they parsed as JSON), so text round-trips them byte for byte.
INSERT_BATCH = """
INSERT INTO raw.webhook_events (idempotency_key, location_id, route, event_type, entity_id,
                                signature_scheme, source_timestamp, received_at, body,
                                payload, headers, correlation_id)
SELECT k, l, r, t, e, s, ts, ra, convert_to(b, 'UTF8'), b::jsonb, h, c
FROM jsonb_to_recordset(%s::jsonb) AS x(k text, l text, r text, t text, e text, s text,
                                         ts timestamptz, ra timestamptz, b text, h jsonb, c uuid)
ON CONFLICT (idempotency_key) DO NOTHING
RETURNING idempotency_key, id
"""

LANDED_CHANNEL = "trainu_webhook_events"  # the ingest run LISTENs on it (ingest/drain.py)
WAKEUP_GAP_SECONDS = 0.01

UPSERT_REJECTIONS = """
INSERT INTO ops.webhook_rejections AS w (bucket, route, reason, count, last_seen_at)
VALUES (date_trunc('hour', %(now)s::timestamptz), %(route)s, %(reason)s, %(count)s, %(now)s)
ON CONFLICT (bucket, route, reason)
DO UPDATE SET count = w.count + excluded.count, last_seen_at = excluded.last_seen_at
"""


@dataclass(frozen=True, slots=True)
class Delivery:
    envelope: Envelope
    route: Route
    scheme: Scheme
    body: bytes
    headers: dict[str, str]
    correlation_id: UUID
    received_at: datetime


@dataclass(frozen=True, slots=True)
class Landed:
    event_id: int | None  # None when it was a duplicate of an earlier delivery
    duplicate: bool


class LandingUnavailable(Exception):
    """The database could not durably take the delivery; the sender must retry."""


class Wakeup:
    """`NOTIFY`s the ingest run that deliveries landed: after their batch is durable, in a
    transaction of its own that waits for no disk flush.

    Not from inside the landing transactions (migration 0023 dropped the trigger that did):
    a transaction that notifies holds Postgres's one notification-queue lock from its commit
    until that commit is flushed, so the writers would commit one after another instead of
    sharing a flush. One notification goes at a time, at most every `WAKEUP_GAP_SECONDS`,
    and the pokes meanwhile make one more, since one look at the table serves them all: at
    a thousand deliveries a second the receiver does not spend its CPU on a notification per
    batch. A lost one only delays: the ingest run looks again every few seconds anyway.
    """

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._due = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self) -> None:
        self._due.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-wakeup")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        conn: psycopg.AsyncConnection | None = None
        try:
            while True:
                await self._due.wait()
                self._due.clear()
                try:
                    if conn is None or conn.closed:
                        conn = await psycopg.AsyncConnection.connect(
                            self._dsn, connect_timeout=2, autocommit=True
                        )
                        await conn.execute("SET synchronous_commit = off")
                    await conn.execute(f"NOTIFY {LANDED_CHANNEL}")
                except (psycopg.Error, OSError) as exc:
                    log.info("landing_wakeup_unsent", error=type(exc).__name__)
                    if conn is not None:
                        with contextlib.suppress(Exception):
                            await conn.close()
                    conn = None
                await asyncio.sleep(WAKEUP_GAP_SECONDS)
        finally:
            if conn is not None:
                await conn.close()


class Lander:
    """A few writer tasks, each with its own connection, share one queue of requests.

    Several writers keep commits overlapping: while one batch waits for its WAL flush the
    next is already being inserted, so the event loop never idles waiting on the disk.
    """

    def __init__(
        self,
        dsn: str,
        *,
        analytics: ProductAnalytics | None = None,
        writers: int = 3,
        max_batch: int = 1000,
    ) -> None:
        self._dsn = dsn
        self._analytics = analytics
        self._writer_count = writers
        self._max_batch = max_batch
        self._queue: asyncio.Queue[tuple[Delivery, asyncio.Future[Landed]]] = asyncio.Queue()
        self._writers: list[asyncio.Task[None]] = []
        self._wakeup = Wakeup(dsn)
        self._rejections: Counter[tuple[str, str]] = Counter()
        self._deferred = 0  # 429s answered since the last successful flush

    async def start(self) -> None:
        await self._wakeup.start()
        self._writers = [
            asyncio.create_task(self._run(), name=f"webhook-lander-{n}")
            for n in range(self._writer_count)
        ]

    async def stop(self) -> None:
        for writer in self._writers:
            writer.cancel()
        await asyncio.gather(*self._writers, return_exceptions=True)
        await self._wakeup.stop()
        while not self._queue.empty():  # never leave a request hanging
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(LandingUnavailable("receiver shutting down"))

    async def land(self, delivery: Delivery) -> Landed:
        future: asyncio.Future[Landed] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((delivery, future))
        return await future

    def count_rejection(self, route: str, reason: str) -> None:
        """Counted in memory and flushed with the next batch: a flood costs no extra writes."""
        self._rejections[(route, reason)] += 1

    def count_deferred(self) -> None:
        self._deferred += 1

    async def _connect(self) -> psycopg.AsyncConnection:
        return await psycopg.AsyncConnection.connect(self._dsn, connect_timeout=2, autocommit=True)

    async def _run(self) -> None:
        conn: psycopg.AsyncConnection | None = None
        # Connect before the first delivery arrives, so it does not wait for the handshake;
        # if the database is down now, the first batch tries again.
        with contextlib.suppress(psycopg.Error, OSError):
            conn = await self._connect()
        try:
            while True:
                batch = [await self._queue.get()]
                while len(batch) < self._max_batch and not self._queue.empty():
                    batch.append(self._queue.get_nowait())
                conn, outcome = await self._land_batch(conn, [d for d, _ in batch])
                if any(isinstance(r, Landed) and not r.duplicate for r in outcome):
                    self._wakeup.poke()
                for (_, future), result in zip(batch, outcome, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, LandingUnavailable):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
        finally:
            if conn is not None:
                await conn.close()

    async def _land_batch(
        self, conn: psycopg.AsyncConnection | None, deliveries: list[Delivery]
    ) -> tuple[psycopg.AsyncConnection | None, list[Landed | LandingUnavailable]]:
        """Commit on the writer's connection. An idle connection may have died with a
        database restart, so a failure on one that was already open gets one retry on a
        fresh connection; re-inserting is safe because duplicates are ignored."""
        retry = conn is not None
        while True:
            try:
                if conn is None or conn.closed:
                    conn = await self._connect()
                return conn, [*await self._commit(conn, deliveries)]
            except (psycopg.Error, OSError) as exc:
                log.warning("landing_failed", batch=len(deliveries), error=type(exc).__name__)
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                conn = None
                if not retry:
                    return None, [LandingUnavailable(str(exc))] * len(deliveries)
                retry = False

    async def _commit(
        self, conn: psycopg.AsyncConnection, deliveries: list[Delivery]
    ) -> list[Landed]:
        rows = orjson.dumps([
            {"k": d.envelope.idempotency_key, "l": d.envelope.location_id, "r": d.route,
             "t": d.envelope.event_type, "e": d.envelope.entity_id, "s": d.scheme,
             "ts": d.envelope.source_timestamp, "ra": d.received_at, "b": d.body.decode(),
             "h": d.headers, "c": d.correlation_id}
            for d in deliveries
        ]).decode()  # fmt: skip
        rejections, self._rejections = self._rejections, Counter()
        deferred, self._deferred = self._deferred, 0
        try:
            if rejections or deferred:
                async with conn.transaction():
                    cursor = await conn.execute(INSERT_BATCH, (rows,))
                    await self._flush_counters(conn, rejections, deferred)
            else:  # autocommit: the one statement is the transaction, one round trip
                cursor = await conn.execute(INSERT_BATCH, (rows,))
            new_ids: dict[str, int] = {key: id_ for key, id_ in await cursor.fetchall()}
        except BaseException:
            self._rejections.update(rejections)  # keep the counts for the next flush
            self._deferred += deferred
            raise
        results = []
        for d in deliveries:  # the first of same-batch twins gets the row, the rest are dupes
            event_id = new_ids.pop(d.envelope.idempotency_key, None)
            results.append(Landed(event_id=event_id, duplicate=event_id is None))
        return results

    async def _flush_counters(
        self, conn: psycopg.AsyncConnection, rejections: Counter[tuple[str, str]], deferred: int
    ) -> None:
        now = datetime.now(UTC)
        for (route, reason), count in rejections.items():
            await conn.execute(
                UPSERT_REJECTIONS, {"now": now, "route": route, "reason": reason, "count": count}
            )
        if deferred:
            properties = {"deferred_deliveries": deferred, "reason": "database unavailable"}
            await conn.execute(
                "INSERT INTO app.events (event_type, actor, properties) VALUES (%s, %s, %s)",
                ("sync_retry", "system:receiver", Jsonb(properties)),
            )
            if self._analytics is not None:
                self._analytics.capture(
                    "sync_retry", distinct_id="system:receiver", properties=properties
                )
