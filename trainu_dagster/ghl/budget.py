"""How many requests the client may send: GHL allows 100 per 10 s and 200,000 per day per
location (per app). `Budget` is what the client asks of a budget; `RequestBudget` keeps it
within one process (the one kept for every process sharing a database is
`connections.request_budget.PostgresRequestBudget`)."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from trainu_dagster.ghl.errors import DailyLimitReached


class Budget(Protocol):
    """What the client asks of a request budget (`RequestBudget`, `PostgresRequestBudget`)."""

    def slot(self, location_id: str) -> AbstractContextManager[None]:
        """Wait for a request slot, hold it while the request is in flight, log the answer."""
        ...

    def exhaust_day(self, location_id: str) -> None:
        """GHL says the location's daily quota is spent: no more requests today."""
        ...


@dataclass
class RequestBudget:
    """At most `requests` per any `window` seconds per location, and `daily` per day.

    A sliding log, exact, so a long pull runs at the full ceiling without tripping GHL's
    own limiter. A request holds its slot while in flight and is logged when its answer
    arrives, not when it leaves: GHL counted it somewhere in between, so however long it
    sat in a queue (ours, the network's or GHL's) the log is never earlier than GHL's, and
    the next request in that slot cannot reach GHL inside its window. `margin` only covers
    the two clocks ticking at slightly different rates.
    """

    requests: int = 100
    window: float = 10.0
    daily: int = 200_000
    margin: float = 0.05
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _answered: dict[str, deque[float]] = field(default_factory=dict, init=False)
    _in_flight: dict[str, int] = field(default_factory=dict, init=False)
    _days: dict[str, tuple[str, int]] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    @contextmanager
    def slot(self, location_id: str) -> Iterator[None]:
        """Hold one request's slot: wait for it, then log it once the request is over."""
        while (wait := self._try_acquire(location_id)) > 0:
            self.sleep(wait)  # outside the lock: other locations keep going
        try:
            yield
        finally:
            with self._lock:
                self._in_flight[location_id] -= 1
                self._answered[location_id].append(self.clock())

    def _try_acquire(self, location_id: str) -> float:
        """Take a slot and return 0, or return how long to wait for one."""
        with self._lock:
            today = datetime.now(UTC).date().isoformat()
            day, used = self._days.get(location_id, (today, 0))
            if day != today:
                day, used = today, 0
            if used >= self.daily:
                raise DailyLimitReached(429, f"daily limit of {self.daily} requests reached")
            answered = self._answered.setdefault(location_id, deque())
            in_flight = self._in_flight.get(location_id, 0)
            now = self.clock()
            while answered and answered[0] <= now - self.window - self.margin:
                answered.popleft()
            if len(answered) + in_flight >= self.requests:
                if not answered:  # every slot is in flight: one frees when it is answered
                    return 0.01
                return answered[0] + self.window + self.margin - now
            self._in_flight[location_id] = in_flight + 1
            self._days[location_id] = (day, used + 1)
            return 0.0

    def exhaust_day(self, location_id: str) -> None:
        """GHL says the day's quota is gone (shared with other apps): stop asking today."""
        with self._lock:
            self._days[location_id] = (datetime.now(UTC).date().isoformat(), self.daily)
