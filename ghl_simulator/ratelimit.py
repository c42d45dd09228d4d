"""GHL's per-location rate limit: a sliding burst window plus a daily quota.

A sliding log (not fixed buckets) so "at most N in any W seconds" holds exactly: a client
that paces itself from the headers never sees a 429, and one that bursts does.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    requests: int
    window_seconds: float
    daily: int = 200_000


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    remaining: int
    daily_remaining: int
    retry_after: float  # seconds until a slot frees; 0 when allowed

    def headers(self, limit: RateLimit) -> dict[str, str]:
        headers = {
            "X-RateLimit-Max": str(limit.requests),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Interval-Milliseconds": str(round(limit.window_seconds * 1000)),
            "X-RateLimit-Limit-Daily": str(limit.daily),
            "X-RateLimit-Daily-Remaining": str(self.daily_remaining),
        }
        if not self.allowed:
            headers["Retry-After"] = str(max(1, math.ceil(self.retry_after)))
        return headers


class SlidingWindowLimiter:
    """Thread-safe; refused requests are not counted, as with GHL."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._clock = clock
        self._lock = threading.Lock()
        self._recent: dict[str, deque[float]] = defaultdict(deque)
        self._daily: dict[tuple[str, int], int] = defaultdict(int)

    def check(self, key: str) -> Verdict:
        now, day = self._clock(), int(time.time() // 86_400)
        with self._lock:
            recent = self._recent[key]
            while recent and recent[0] <= now - self.limit.window_seconds:
                recent.popleft()
            used_today = self._daily[(key, day)]
            if used_today >= self.limit.daily:
                return Verdict(False, 0, 0, 86_400 - time.time() % 86_400)
            if len(recent) >= self.limit.requests:
                wait = recent[0] + self.limit.window_seconds - now
                return Verdict(False, 0, self.limit.daily - used_today, wait)
            recent.append(now)
            self._daily[(key, day)] = used_today + 1
            return Verdict(
                True,
                self.limit.requests - len(recent),
                self.limit.daily - used_today - 1,
                0.0,
            )
