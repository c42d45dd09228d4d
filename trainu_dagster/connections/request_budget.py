"""GHL's request budget shared by every process that calls GHL for a studio (send runs,
pulls, backfills, CLI commands), kept in the application database: GHL's limits are per
location, whichever process asks. The GHL client only knows the `Budget` it is given."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta

import psycopg

from trainu_dagster.ghl.client import GhlClient
from trainu_dagster.ghl.credentials import Credentials
from trainu_dagster.ghl.errors import DailyLimitReached
from trainu_dagster.observability.logging import get_logger

log = get_logger(__name__)


SLOT_LOCK = """
INSERT INTO ops.ghl_request_budget AS b (location_id) VALUES (%(location)s)
ON CONFLICT (location_id) DO UPDATE SET location_id = excluded.location_id
RETURNING clock_timestamp() AS now, (clock_timestamp() AT TIME ZONE 'UTC')::date AS today,
          CASE WHEN b.day = (clock_timestamp() AT TIME ZONE 'UTC')::date THEN b.used ELSE 0 END
              AS used
"""
# A logged request counts while in flight (until `abandoned` after it started: its process
# died) and for `keep` after its answer; the rest is deleted as the slot is taken.
SLOT_COUNT = """
WITH gone AS (
    DELETE FROM ops.ghl_requests
    WHERE location_id = %(location)s
      AND (answered_at < %(now)s - %(keep)s
           OR (answered_at IS NULL AND started_at < %(now)s - %(abandoned)s))
)
SELECT count(*), min(answered_at) FROM ops.ghl_requests
WHERE location_id = %(location)s
  AND (answered_at >= %(now)s - %(keep)s
       OR (answered_at IS NULL AND started_at >= %(now)s - %(abandoned)s))
"""
SLOT_TAKE = """
WITH counted AS (
    UPDATE ops.ghl_request_budget SET day = %(today)s, used = %(used)s + 1
    WHERE location_id = %(location)s
)
INSERT INTO ops.ghl_requests (location_id, started_at, holder)
VALUES (%(location)s, %(now)s, %(holder)s) RETURNING id
"""


@dataclass
class PostgresRequestBudget:
    """`RequestBudget`'s rules kept in the application database (`ops.ghl_request_budget`,
    `ops.ghl_requests`), so every process calling GHL for a studio (send runs, pulls,
    backfills) shares one budget per location.

    Taking a slot locks the studio's budget row, counts the requests in flight and those
    answered within the window, and logs the new one as in flight; its answer is stamped
    when it arrives, and it counts until then plus the window. The database's clock is
    the one every process reads. A request left in flight by a process that died keeps its
    slot for `abandoned_after` seconds (longer than any request can take: the client's
    timeout, then the window), then frees it. `connect` opens a connection to the
    application database as the administrative role; each thread borrows its own.
    """

    connect: Callable[[], psycopg.Connection]
    requests: int = 100
    window: float = 10.0
    daily: int = 200_000
    margin: float = 0.05
    abandoned_after: float = 120.0
    sleep: Callable[[float], None] = time.sleep
    _idle: list[psycopg.Connection] = field(default_factory=list, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _holder: str = field(default="", init=False)  # who took a slot: host and process

    def __post_init__(self) -> None:
        self._holder = f"{socket.gethostname()}:{os.getpid()}"

    @contextmanager
    def slot(self, location_id: str) -> Iterator[None]:
        while True:
            request_id, wait = self._try_acquire(location_id)
            if request_id is not None:
                break
            self.sleep(wait)
        try:
            yield
        finally:
            try:
                with self._connection() as conn:
                    conn.execute(
                        "UPDATE ops.ghl_requests SET answered_at = clock_timestamp() WHERE id = %s",
                        (request_id,),
                    )
            except psycopg.Error as error:  # the slot frees itself after `abandoned_after`
                log.warning("ghl_budget_unrecorded", location_id=location_id, error=str(error))

    def _try_acquire(self, location_id: str) -> tuple[int | None, float]:
        """Take a slot: (its log id, 0); or (None, how long to wait for one)."""
        keep = timedelta(seconds=self.window + self.margin)
        with self._connection() as conn, conn.transaction():
            locked = conn.execute(SLOT_LOCK, {"location": location_id}).fetchone()
            assert locked is not None  # an upsert's RETURNING always has its row
            now, today, used = locked
            if used >= self.daily:
                exhausted = True
            else:
                exhausted = False
                in_window = conn.execute(SLOT_COUNT, {
                    "location": location_id, "now": now, "keep": keep,
                    "abandoned": timedelta(seconds=self.abandoned_after),
                }).fetchone()  # fmt: skip
                assert in_window is not None  # an aggregate always has its row
                counted, oldest = in_window
                if counted >= self.requests:
                    if oldest is None:  # every slot is in flight: one frees when it is answered
                        return None, 0.01
                    return None, max((oldest + keep - now).total_seconds(), 0.001)
                taken = conn.execute(SLOT_TAKE, {
                    "location": location_id, "now": now, "today": today, "used": used,
                    "holder": self._holder,
                }).fetchone()  # fmt: skip
                assert taken is not None  # an INSERT's RETURNING always has its row
                request_id = taken[0]
        if exhausted:
            raise DailyLimitReached(429, f"daily limit of {self.daily} requests reached")
        return request_id, 0.0

    def exhaust_day(self, location_id: str) -> None:
        with self._connection() as conn:
            conn.execute(
                """INSERT INTO ops.ghl_request_budget AS b (location_id, day, used)
                   VALUES (%(location)s, (clock_timestamp() AT TIME ZONE 'UTC')::date, %(daily)s)
                   ON CONFLICT (location_id) DO UPDATE SET day = excluded.day,
                       used = CASE WHEN b.day = excluded.day THEN greatest(b.used, excluded.used)
                                   ELSE excluded.used END""",
                {"location": location_id, "daily": self.daily},
            )

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection]:
        """An idle autocommit connection of this budget's, or a new one."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None or conn.closed:
            conn = self.connect()
            conn.autocommit = True
        try:
            yield conn
        except BaseException:
            conn.close()  # broken or interrupted mid-statement: never reused
            raise
        with self._lock:
            self._idle.append(conn)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


@contextmanager
def shared_budget_client(
    token: str | Credentials, *, base_url: str, connect: Callable[[], psycopg.Connection]
) -> Iterator[GhlClient]:
    """A client whose request budget is the one every process shares through Postgres
    (`connect`: autocommit connections to the application database): GHL's limit is per
    location, whichever run, CLI command or worker asks."""
    budget = PostgresRequestBudget(connect)
    try:
        with GhlClient(token, base_url=base_url, budget=budget) as client:
            yield client
    finally:
        budget.close()
